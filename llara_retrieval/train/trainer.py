"""The trainer shared by ``pretrain`` and ``finetune`` (Tevatron-style: arguments / data / model / trainer /
thin drivers): model loading for training, a ``Trainer`` driven by a loss function, the run loop and the
stage ``main``.

- ``load_for_training(model_args, training_args) -> (model, tokenizer, spec)``: any name or path that
  ``resolve_spec`` accepts, LLaRA tokens added, in train mode, LoRA-wrapped when ``--lora``.
- ``LlaraTrainer``: HF ``Trainer`` whose loss comes from ``loss_fn(model, inputs) -> dict`` (``"loss"``
  plus named components, e.g. ``ebae``/``ebar``/``lm``); the components are averaged between log steps.
- ``run_training(trainer, resume_from)``: train, turning Ctrl-C into a one-line message.
- ``cli_main(stage, dataclass_types, run, argv, **run_kwargs)``: a stage's ``main``.

Output folders are in :mod:`llara_retrieval.train.outputs`, callbacks in :mod:`llara_retrieval.train.callbacks`.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Callable, Sequence

import torch
from transformers import HfArgumentParser, Trainer

from llara_retrieval._utils.cli import run_cli
from llara_retrieval._utils.errors import LlaraError, first_line
from llara_retrieval.core.loading import load_model, peft_quietly, resolve_spec
from llara_retrieval.core.precision import log_precision, resolve_dtype
from llara_retrieval.train.arguments import LlaraTrainingArguments, ModelArguments

LossFn = Callable[[torch.nn.Module, dict], dict]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP/DeepSpeed wrappers (PEFT models keep their wrapper: they proxy ``config``)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def load_for_training(model_args: ModelArguments, training_args: LlaraTrainingArguments):
    """Causal LM (train mode, LoRA-wrapped with ``--lora``), tokenizer and the spec it came from.

    The seed is set first: LoRA's random initialisation happens here, before the Trainer seeds anything.
    """
    from transformers import set_seed

    set_seed(training_args.seed)
    spec = resolve_spec(model_args.model_name_or_path)
    dtype = resolve_dtype(model_args.dtype, torch.device("cpu"))
    if training_args.process_index == 0:  # once per run, not once per torchrun rank
        log_precision(training_args.device, dtype, training_args.autocast, training_args.precision_pinned_by)
    model, tokenizer = load_model(spec, dtype, trust_remote_code=model_args.trust_remote_code)
    if model_args.attn_implementation:
        model.set_attn_implementation(model_args.attn_implementation)
    model.config.use_cache = False
    if model_args.lora:
        from peft import LoraConfig, get_peft_model

        targets = [m.strip() for m in model_args.lora_target_modules.split(",") if m.strip()]
        config = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
                            lora_dropout=model_args.lora_dropout, target_modules=targets, task_type="CAUSAL_LM")
        try:
            with peft_quietly():
                model = get_peft_model(model, config)
        except ValueError as exc:
            raise LlaraError(f"--lora_target_modules {model_args.lora_target_modules!r}: {exc}") from None
        if training_args.gradient_checkpointing:
            model.enable_input_require_grads()
    return model.train(), tokenizer, spec


class LlaraTrainer(Trainer):
    """``Trainer`` driven by a loss function returning ``{"loss": total, component: value, ...}``."""

    def __init__(self, *args, loss_fn: LossFn, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.model_accepts_loss_kwargs = False  # our loss is a per-batch mean: HF divides by grad-accum steps
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = self.loss_fn(model, inputs)
        if model.training:
            for key, value in out.items():
                if key != "loss" and torch.is_tensor(value):
                    self._sums[key] += float(value.detach())
                    self._counts[key] += 1
        return (out["loss"], out) if return_outputs else out["loss"]

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            logs.update({key: round(self._sums[key] / self._counts[key], 6) for key in self._sums})
            self._sums.clear()
            self._counts.clear()
        super().log(logs, *args, **kwargs)


def run_training(trainer: Trainer, resume_from: str | None) -> None:
    """``trainer.train`` with resume; an interrupt says how to continue instead of dumping a traceback."""
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except KeyboardInterrupt:
        raise LlaraError(f"interrupted: continue with the same command plus --resume "
                         f"(checkpoints in {trainer.args.output_dir})") from None


def cli_main(stage: str, dataclass_types: tuple, run: Callable, argv: Sequence[str] | None = None,
             **run_kwargs) -> int:
    """A training command's ``main``: parse ``argv`` into ``dataclass_types`` (HF style, ``--snake_case``
    flags) and call ``run(*parsed, **run_kwargs)`` under ``run_cli`` (one-line errors, exit status).

    Parsing happens inside ``run_cli`` too, so a value the argument classes refuse (``--per_device_train_batch_size
    0``, a flag combination HF rejects) is a one-line error, not a traceback.
    """
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    parser = HfArgumentParser(dataclass_types, prog=f"python -m llara_retrieval.train {stage}")

    def body():
        try:
            parsed = parser.parse_args_into_dataclasses(args=list(argv) if argv is not None else None)
        except LlaraError:
            raise
        except ValueError as exc:
            raise LlaraError(first_line(exc)) from None
        return run(*parsed, **run_kwargs)

    return run_cli(stage, body)  # training itself says how to --resume
