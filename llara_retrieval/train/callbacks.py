"""Trainer callbacks shared by both stages: the loss log and curve, and checkpoints that are encoder dirs."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from transformers import TrainerCallback

from llara_retrieval._utils.atomic import atomic_save_figure, atomic_write
from llara_retrieval.core.sentencepiece_text import save_tokenizer
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec

LOSS_LOG = "loss_log.jsonl"
LOSS_PNG = "loss_curve.png"


def trim_loss_log(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from, so the curve has no duplicate steps."""
    if not path.is_file() or int(os.environ.get("RANK", "0")) != 0:
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic_write(path, "".join(row + "\n" for row in rows))


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
    """After each checkpoint save, add what ``LlaraEncoder.from_pretrained(checkpoint)`` needs (with
    ``dtype: null``, as the final encoder dir: each machine loads it in its best precision)."""

    def __init__(self, tokenizer, spec: EncoderSpec):
        self.tokenizer, self.spec = tokenizer, spec

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not state.is_world_process_zero or not folder.is_dir():
            return
        if (folder / "adapter_config.json").is_file():  # a PEFT checkpoint: the adapter on its base
            if not self.spec.adapter:
                replace(self.spec, adapter=".", dtype=None).save(folder / SPEC_FILE)
            return
        save_tokenizer(self.tokenizer, folder)
        replace(self.spec, base_model=".", gguf_file=None, adapter=None, dtype=None).save(folder / SPEC_FILE)


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
    return atomic_save_figure(fig, png_path)
