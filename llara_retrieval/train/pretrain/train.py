"""``python -m llara_retrieval.train pretrain``: LLaRA stage 1 (EBAE + EBAR adaptation) on HF ``Trainer``.

Works under ``torchrun`` and with ``--deepspeed configs/ds_zero1.json`` unchanged; the result in
``--output_dir`` is an encoder dir (and ``adapter/`` with ``--lora``).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from typing import Sequence

import torch
from transformers import TrainerCallback

from llara_retrieval._utils.errors import LlaraError, LlaraWarning
from llara_retrieval.core.prompts import PromptTokenizer
from llara_retrieval.train.arguments import LlaraTrainingArguments, ModelArguments, PretrainArguments
from llara_retrieval.train.callbacks import CheckpointSpecWriter, LossLogger
from llara_retrieval.train.outputs import prepare_output_dir, save_encoder
from llara_retrieval.train.pretrain.data import (
    PretrainCollator,
    PretrainDataset,
    excluded_target_ids,
    read_pretrain_records,
    stopword_filter,
)
from llara_retrieval.train.pretrain.model import PretrainLoss, supports_4d_mask
from llara_retrieval.train.trainer import LlaraTrainer, cli_main, load_for_training, run_training, unwrap

CHECK_RTOL = 1e-2


def check_single_forward(model: torch.nn.Module, batch: dict, loss: PretrainLoss) -> None:
    """Refuse to train if this model's attention ignores our 4-D mask (one forward != two forwards)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        one = loss(model, batch)
        two = replace(loss, single_forward=False)(model, batch)
    model.train(was_training)
    for key in one:
        if not torch.allclose(one[key], two[key], rtol=CHECK_RTOL, atol=1e-4):
            raise LlaraError(f"{type(unwrap(model)).__name__} does not honour the 4-D attention mask "
                             f"({key}: {float(one[key]):.5f} in one forward vs {float(two[key]):.5f} in two): "
                             "pass --single_forward false")


ARGUMENT_TYPES = (ModelArguments, PretrainArguments, LlaraTrainingArguments)  # the flags of `train pretrain`


def main(argv: Sequence[str] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> int:
    return cli_main("pretrain", ARGUMENT_TYPES, run, argv, callbacks=callbacks)


def run(model_args: ModelArguments, data_args: PretrainArguments, training_args: LlaraTrainingArguments,
        callbacks: Sequence[TrainerCallback] = ()) -> None:
    records = read_pretrain_records(data_args.train_data)  # every record checked before the (slow) model load
    resume_from = prepare_output_dir(training_args)
    model, tokenizer, spec = load_for_training(model_args, training_args)
    prompt_tokenizer = PromptTokenizer(tokenizer, spec.prompts)
    dataset = PretrainDataset(records, prompt_tokenizer, data_args.max_length, data_args.max_target_length,
                              excluded_target_ids(tokenizer, prompt_tokenizer), length_budget=data_args.length_budget,
                              target_filter=stopword_filter(data_args.stopwords))
    collator = PretrainCollator(prompt_tokenizer, prompt_tokenizer.pad_id, with_lm=data_args.lm_weight != 0)
    loss = PretrainLoss(data_args.ebae_weight, data_args.ebar_weight, data_args.lm_weight, data_args.single_forward,
                        data_args.lm_mean, data_args.bow_weighting)
    if loss.single_forward:
        if supports_4d_mask(unwrap(model).config):
            check_single_forward(model, collator([dataset[i] for i in range(min(2, len(dataset)))]), loss)
        else:
            warnings.warn(f"attention {unwrap(model).config._attn_implementation!r} cannot take a 4-D mask: "
                          "using two forwards per example", LlaraWarning, stacklevel=2)
    trainer = LlaraTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                           loss_fn=loss, callbacks=[LossLogger(training_args.output_dir),
                                                   CheckpointSpecWriter(tokenizer, spec), *callbacks])
    run_training(trainer, resume_from)
    if trainer.is_world_process_zero():
        save_encoder(trainer.model, tokenizer, spec, training_args.output_dir, model_args.save_dtype,
                     bf16_weights=training_args.bf16,
                     provenance={"stage": "pretrain", "train_data": data_args.train_data,
                                 "global_step": trainer.state.global_step})
        print(f"pretrain: encoder written to {training_args.output_dir}", file=sys.stderr)
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    sys.exit(main())
