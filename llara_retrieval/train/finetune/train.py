"""``python -m llara_retrieval.train finetune``: LLaRA stage 2, contrastive (InfoNCE) fine-tuning.

Same conventions as ``pretrain`` (HF ``Trainer``, torchrun, ``--deepspeed``, ``--lora``, ``--resume``);
the result in ``--output_dir`` is a merged encoder dir, plus ``adapter/`` with ``--lora``.
"""
from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from transformers import TrainerCallback

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.loading import resolve_spec
from llara_retrieval.core.prompts import PromptTokenizer
from llara_retrieval.core.spec import EncoderSpec
from llara_retrieval.train.arguments import LlaraTrainingArguments, ModelArguments
from llara_retrieval.train.callbacks import LossLogger, trim_loss_log
from llara_retrieval.train.finetune.data import GroupCollator, GroupDataset, read_train_data, report_truncation
from llara_retrieval.train.finetune.model import ContrastiveModel, gradcache_step
from llara_retrieval.train.outputs import prepare_output_dir, save_encoder
from llara_retrieval.train.trainer import LlaraTrainer, cli_main, load_for_training, run_training, unwrap


@dataclass
class FinetuneArguments:
    train_data: str = field(metadata={"help": "JSONL of {\"query\", \"pos\": [...], \"neg\": [...]} (see "
                                              "`python -m llara_retrieval.train mine`)."})
    train_group_size: int = field(default=16, metadata={"help": "Passages per query: 1 positive + N-1 hard "
                                                                "negatives (reference 16)."})
    query_max_len: int = field(default=64, metadata={"help": "Query tokens incl. the prompt (reference 64)."})
    passage_max_len: int = field(default=160, metadata={"help": "Passage tokens incl. the prompt (reference 160)."})
    temperature: float = field(default=0.01, metadata={"help": "InfoNCE temperature τ (reference 0.01)."})
    negatives_cross_device: bool = field(default=False, metadata={
        "help": "Score every query against the passages of all devices (all-gather keeping local gradients)."})
    scale_cross_device_gradients: bool = field(default=False, metadata={
        "help": "With --negatives_cross_device, multiply the gradients by the number of devices so they equal "
                "one process's gradient on the whole global batch (the reference does not: its gradients are "
                "1/devices of that, which under AdamW only gradient clipping and epsilon notice)."})
    grad_cache_chunk_size: int = field(default=0, metadata={
        "help": "GradCache: forward/backward at most N sequences at a time, with the gradients of the full "
                "batch (0: off)."})
    eval_data: str | None = field(default=None, metadata={"help": "BEIR folder for dev nDCG@10 during training."})
    eval_split: str = field(default="dev", metadata={"help": "qrels split of --eval_data."})
    eval_every: int = field(default=0, metadata={"help": "Evaluate every N steps (0: at the end only)."})
    eval_max_docs: int | None = field(default=None, metadata={
        "help": "Cap the dev corpus: judged docs plus a seeded sample (a cheap proxy on CPU)."})


class FinetuneTrainer(LlaraTrainer):
    """Trains a :class:`ContrastiveModel`; checkpoints hold only the wrapped LM (a PEFT adapter with LoRA)."""

    def __init__(self, *args, grad_cache_chunk_size: int = 0, **kwargs):
        super().__init__(*args, loss_fn=lambda model, inputs: model(**inputs), **kwargs)
        self.grad_cache_chunk_size = grad_cache_chunk_size

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.grad_cache_chunk_size:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        inputs = self._prepare_inputs(inputs)
        scale = 1.0 / self.current_gradient_accumulation_steps
        with self.compute_loss_context_manager():
            loss = gradcache_step(model, unwrap(model), inputs["query_ids"], inputs["passage_ids"],
                                  self.grad_cache_chunk_size, loss_scale=scale, loss_backward=self.accelerator.backward,
                                  no_sync=functools.partial(self.accelerator.no_sync, model))
        return loss * scale

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if self.args.should_save:
            lm = unwrap(self.model).lm
            kwargs = {"save_embedding_layers": False} if hasattr(lm, "peft_config") else {}
            lm.save_pretrained(output_dir or self.args.output_dir, safe_serialization=True, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model=unwrap(model or self.model).lm)


class EpochSetter(TrainerCallback):
    """Tells the dataset the epoch, so each epoch (and a resumed one) draws its own negatives."""

    def __init__(self, dataset: GroupDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor((state.epoch or 0) + 1e-6))


ARGUMENT_TYPES = (ModelArguments, FinetuneArguments, LlaraTrainingArguments)  # the flags of `train finetune`


def main(argv: Sequence[str] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> int:
    return cli_main("finetune", ARGUMENT_TYPES, run, argv, callbacks=callbacks)


def check_args(data_args: FinetuneArguments, training_args: LlaraTrainingArguments) -> None:
    if data_args.temperature <= 0:
        raise LlaraError(f"--temperature must be positive, not {data_args.temperature}")
    if data_args.grad_cache_chunk_size < 0:
        raise LlaraError(f"--grad_cache_chunk_size must be 0 (off) or positive, not {data_args.grad_cache_chunk_size}")
    if data_args.grad_cache_chunk_size and training_args.deepspeed:
        raise LlaraError("--grad_cache_chunk_size runs several backward passes per step, which DeepSpeed "
                         "does not support: use one or the other")


def _title_separator(model: str) -> str | None:
    """How the model's spec joins ``{"title", "text"}`` passages (as its encoder will); a model that does
    not resolve is reported by the model load, after the data check."""
    try:
        return resolve_spec(model).title_separator
    except LlaraError:
        return EncoderSpec().title_separator


def run(model_args: ModelArguments, data_args: FinetuneArguments, training_args: LlaraTrainingArguments,
        callbacks: Sequence[TrainerCallback] = ()) -> None:
    check_args(data_args, training_args)
    resume_from = prepare_output_dir(training_args)
    records = read_train_data(data_args.train_data, data_args.train_group_size,  # fail before loading the model
                              _title_separator(model_args.model_name_or_path))
    if data_args.negatives_cross_device and training_args.world_size > 1:
        training_args.dataloader_drop_last = True  # all-gather needs the same batch shape on every rank
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # nothing to pin for; silences a warning per epoch
    if training_args.ddp_find_unused_parameters is None:
        training_args.ddp_find_unused_parameters = False  # every trainable parameter is used (head frozen)
    lm, tokenizer, spec = load_for_training(model_args, training_args)
    prompt_tokenizer = PromptTokenizer(tokenizer, spec.prompts)
    collator = GroupCollator(prompt_tokenizer, prompt_tokenizer.pad_id, data_args.query_max_len, data_args.passage_max_len)
    if training_args.process_index == 0:
        report_truncation(records, prompt_tokenizer, data_args.query_max_len)
    dataset = GroupDataset(records, data_args.train_group_size, seed=training_args.seed)
    model = ContrastiveModel(lm, prompt_tokenizer.special_ids, data_args.temperature,
                             data_args.negatives_cross_device, data_args.scale_cross_device_gradients)
    extra = [EpochSetter(dataset), LossLogger(training_args.output_dir)]
    evaluator = dev_callback(data_args, training_args, lm, tokenizer, spec, resume_from)
    trainer = FinetuneTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                              grad_cache_chunk_size=data_args.grad_cache_chunk_size,
                              callbacks=[*extra, *([evaluator] if evaluator else []), *callbacks])
    if evaluator:
        evaluator.trainer = trainer
    run_training(trainer, resume_from)
    if trainer.is_world_process_zero():
        save_encoder(unwrap(trainer.model).lm, tokenizer, spec, training_args.output_dir, model_args.save_dtype,
                     bf16_weights=training_args.bf16,
                     provenance={"stage": "finetune", "train_data": data_args.train_data,
                                 "global_step": trainer.state.global_step,
                                 "train_group_size": data_args.train_group_size,
                                 "temperature": data_args.temperature,
                                 "query_max_len": data_args.query_max_len,
                                 "passage_max_len": data_args.passage_max_len})
        print(f"finetune: encoder written to {training_args.output_dir}", file=sys.stderr)
    trainer.accelerator.wait_for_everyone()


def dev_callback(data_args: FinetuneArguments, training_args, lm, tokenizer, spec, resume_from: str | None):
    """The dev-evaluation callback, or None without ``--eval_data``."""
    if not data_args.eval_data:
        return None
    from llara_retrieval.train.finetune.evaluation import EVAL_LOG, DevEvalCallback, DevEvaluator

    evaluator = DevEvaluator(data_args.eval_data, data_args.eval_split, spec, data_args.query_max_len,
                             data_args.passage_max_len, data_args.eval_max_docs,
                             training_args.per_device_eval_batch_size, training_args.seed)
    log = Path(training_args.output_dir) / EVAL_LOG
    if resume_from:
        trim_loss_log(log, int(Path(resume_from).name.rsplit("-", 1)[-1]))
    elif training_args.process_index == 0:
        log.unlink(missing_ok=True)
    return DevEvalCallback(evaluator, lm, tokenizer, training_args.output_dir, data_args.eval_every)


if __name__ == "__main__":
    sys.exit(main())
