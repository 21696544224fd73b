"""Training infrastructure shared by ``pretrain`` and ``finetune``: keep the stage drivers thin.

API (all a stage needs):

- ``prepare_output_dir(args) -> str | None``: refuse a non-empty ``output_dir`` unless
  ``--overwrite_output_dir``/``--resume``; returns the checkpoint to resume from (or None).
- ``load_for_training(model_args, training_args) -> (model, tokenizer, spec)``: any name or path that
  ``resolve_spec`` accepts, LLaRA tokens added, in train mode, LoRA-wrapped when ``--lora``.
- ``LlaraTrainer``: HF ``Trainer`` whose loss comes from ``loss_fn(model, inputs) -> dict`` (``"loss"``
  plus named components, e.g. ``ebae``/``ebar``/``lm``); the components are averaged between log steps
  and logged with the loss.
- ``LossLogger``: callback writing every log row to ``loss_log.jsonl`` and ``loss_curve.png`` at the end.
- ``CheckpointSpecWriter(tokenizer, spec)``: callback making each ``checkpoint-N`` an encoder dir too
  (tokenizer + ``llara_config.json``), so intermediate checkpoints can be evaluated as they are.
- ``save_encoder(model, tokenizer, spec, output_dir, ...)``: the final encoder dir (merged weights +
  tokenizer + ``llara_config.json``, written last) and, for LoRA, ``output_dir/adapter`` (PEFT adapter
  with its own ``llara_config.json``); both load with ``LlaraEncoder.from_pretrained``.
- ``run_training(trainer, resume_from)``: train, turning Ctrl-C into a one-line message.
- ``cli_main(stage, dataclass_types, run, argv, callbacks)``: a stage's ``main``: parse with
  ``HfArgumentParser``, call ``run(*dataclasses, callbacks=...)``, one-line errors, exit status.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import HfArgumentParser, Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ..cli_runner import run_cli
from ..devices import DTYPES, dtype_name, resolve_dtype
from ..encoder import LlaraEncoder
from ..errors import LlaraError
from ..evaluation import atomic_write
from ..loading import load_model, resolve_spec
from ..spec import SPEC_FILE, EncoderSpec
from .arguments import LlaraTrainingArguments, ModelArguments

LOSS_LOG = "loss_log.jsonl"
LOSS_PNG = "loss_curve.png"
ADAPTER_DIR = "adapter"
logger = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, dict], dict]


def prepare_output_dir(args: LlaraTrainingArguments) -> str | None:
    """Check ``output_dir`` is safe to write; with ``--resume`` return the last checkpoint (None: start)."""
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise LlaraError(f"{out}: output_dir exists and is not a directory")
    if args.resume:
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            logger.warning("--resume: no checkpoint in %s, starting from scratch", out)
        _trim_loss_log(out / LOSS_LOG, _checkpoint_step(last) if last else 0)
        return last
    if out.is_dir() and any(out.iterdir()) and not args.overwrite_output_dir:
        raise LlaraError(f"{out}: output_dir is not empty (pass --resume to continue a run or "
                         "--overwrite_output_dir to replace it)")
    if out.is_dir() and args.overwrite_output_dir and args.process_index == 0:
        (out / LOSS_LOG).unlink(missing_ok=True)
        for old in out.glob("checkpoint-*"):  # a stale later checkpoint would hijack a future --resume
            shutil.rmtree(old, ignore_errors=True)
    return None


def _checkpoint_step(path: str) -> int:
    return int(Path(path).name.rsplit("-", 1)[-1])


def _trim_loss_log(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from, so the curve has no duplicate steps."""
    if not path.is_file() or int(os.environ.get("RANK", "0")) != 0:
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write(path, "".join(row + "\n" for row in rows))


def load_for_training(model_args: ModelArguments, training_args: LlaraTrainingArguments):
    """Causal LM (train mode, LoRA-wrapped with ``--lora``), tokenizer and the spec it came from.

    The seed is set first: LoRA's random initialisation happens here, before the Trainer seeds anything.
    """
    from transformers import set_seed

    set_seed(training_args.seed)
    spec = resolve_spec(model_args.model_name_or_path)
    dtype = resolve_dtype(model_args.dtype, torch.device("cpu"))
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


class LossLogger(TrainerCallback):
    """Append each log row (step, loss, components, lr) to ``loss_log.jsonl``; plot them at the end."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / LOSS_LOG

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.path.is_file():
            plot_losses(self.path, self.path.with_name(LOSS_PNG))


class CheckpointSpecWriter(TrainerCallback):
    """After each checkpoint save, add what ``LlaraEncoder.from_pretrained(checkpoint)`` needs."""

    def __init__(self, tokenizer, spec: EncoderSpec):
        self.tokenizer, self.spec = tokenizer, spec

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not state.is_world_process_zero or not folder.is_dir():
            return
        if (folder / "adapter_config.json").is_file():  # a PEFT checkpoint: the adapter on its base
            if not self.spec.adapter:
                replace(self.spec, adapter=".").save(folder / SPEC_FILE)
            return
        self.tokenizer.save_pretrained(folder)
        replace(self.spec, base_model=".", gguf_file=None, adapter=None).save(folder / SPEC_FILE)


def plot_losses(log_path: str | Path, png_path: str | Path) -> Path | None:
    """Loss and each component against the step (one panel each), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_path).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    keys = ["loss"] + sorted({k for r in rows for k in r} - {"loss", "step", "epoch", "learning_rate",
                                                              "grad_norm"} - {k for r in rows for k in r
                                                                              if not isinstance(r[k], (int, float))})
    keys = [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if not rows or not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        ax.plot(*zip(*points), marker="." if len(points) < 50 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path


def run_training(trainer: Trainer, resume_from: str | None) -> None:
    """``trainer.train`` with resume; an interrupt says how to continue instead of dumping a traceback."""
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    except KeyboardInterrupt:
        raise LlaraError(f"interrupted: continue with the same command plus --resume "
                         f"(checkpoints in {trainer.args.output_dir})") from None


def save_encoder(model: torch.nn.Module, tokenizer, spec: EncoderSpec, output_dir: str | Path,
                 save_dtype: str | torch.dtype | None = None, provenance: dict | None = None) -> Path:
    """Write ``output_dir`` as an encoder dir (and ``output_dir/adapter`` for a PEFT model).

    Files are staged in a temp dir and moved in; ``llara_config.json`` comes last, so a crash never
    leaves a dir that looks finished. Checkpoints and logs already in ``output_dir`` are kept.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {"base_model": spec.base_model, "adapter": spec.adapter, **(provenance or {})}
    dtype = DTYPES[save_dtype.lower()] if isinstance(save_dtype, str) else save_dtype
    if hasattr(model, "merge_and_unload"):  # PEFT: save the adapter, then merge it for the full dir
        _save_adapter(model, spec, out / ADAPTER_DIR, provenance, dtype)
        model = model.merge_and_unload()
    model = model.to(dtype) if dtype is not None else model
    encoder = LlaraEncoder(model.eval(), tokenizer, replace(spec, provenance=provenance), torch.device("cpu"))
    staging = out / f".encoder-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        encoder.save_pretrained(staging)
        (out / SPEC_FILE).unlink(missing_ok=True)
        for item in sorted(staging.iterdir(), key=lambda p: p.name == SPEC_FILE):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _save_adapter(model, spec: EncoderSpec, path: Path, provenance: dict, dtype: torch.dtype | None) -> None:
    """PEFT adapter dir plus a spec naming the base, so ``LlaraEncoder.from_pretrained(path)`` loads it."""
    if spec.adapter:
        logger.warning("the start model already had an adapter: the new adapter is saved without %s "
                       "(use the merged encoder dir)", SPEC_FILE)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        # The LLaRA token rows are mean-initialised deterministically on load: no need to store embeddings.
        model.save_pretrained(tmp, save_embedding_layers=False)
        if not spec.adapter:
            dtype = dtype or next(model.parameters()).dtype
            replace(spec, adapter=".", dtype=dtype_name(dtype), provenance=provenance).save(tmp / SPEC_FILE)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cli_main(stage: str, dataclass_types: tuple, run: Callable, argv: Sequence[str] | None = None,
             callbacks: Sequence[TrainerCallback] = ()) -> int:
    """Parse ``argv`` into ``dataclass_types`` and call ``run(*parsed, callbacks=callbacks)`` (``run_cli``)."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    parser = HfArgumentParser(dataclass_types, prog=f"python -m llara_retrieval.train {stage}")
    parsed = parser.parse_args_into_dataclasses(args=list(argv) if argv is not None else None)
    return run_cli(stage, lambda: run(*parsed, callbacks=callbacks))  # training itself says how to --resume
