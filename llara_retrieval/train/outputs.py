"""Training output folders: refuse to overwrite, find the checkpoint to resume, write the final encoder dir
(merged weights + tokenizer + the sentence-transformers files + ``llara_config.json``, written last) and,
for LoRA, ``output_dir/adapter``."""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from llara_retrieval._utils.atomic import atomic_dir, temp_dir_beside
from llara_retrieval._utils.errors import LlaraError, LlaraWarning
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.core.precision import dtype_name, parse_dtype
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec
from llara_retrieval.train.arguments import LlaraTrainingArguments
from llara_retrieval.train.callbacks import LOSS_LOG, LOSS_PNG, trim_loss_log
from llara_retrieval.train.finetune.evaluation import EVAL_LOG, EVAL_PNG

ADAPTER_DIR = "adapter"
CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
CHECKPOINT_WEIGHTS = ("model*.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                      "pytorch_model*.bin", "latest")  # "latest": a DeepSpeed checkpoint
TRAINING_LOGS = {LOSS_LOG, LOSS_PNG, EVAL_LOG, EVAL_PNG}


def prepare_output_dir(args: LlaraTrainingArguments) -> str | None:
    """Check ``output_dir`` is safe to write; with ``--resume`` return the checkpoint to continue from (None:
    start afresh).

    A dir with files is refused unless ``--overwrite_output_dir``, or ``--resume`` with a complete checkpoint to
    continue; ``--resume`` without one starts afresh only where nothing but this trainer's logs would be
    replaced. Incomplete checkpoints (a run killed while writing one) are removed, with a warning.
    """
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise LlaraError(f"{out}: output_dir exists and is not a directory")
    if args.resume:
        last = resumable_checkpoint(out, remove_incomplete=args.process_index == 0)
        if last is None:
            foreign = sorted(p.name for p in out.iterdir() if not _is_training_log(p)) if out.is_dir() else []
            if foreign and not args.overwrite_output_dir:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise LlaraError(f"{out}: --resume found no checkpoint to continue from, and the dir holds files "
                                 f"a new run would replace ({shown}): pass --overwrite_output_dir to replace them, "
                                 "or choose another --output_dir")
            warnings.warn(f"--resume: no checkpoint in {out}, starting from scratch", LlaraWarning, stacklevel=2)
        trim_loss_log(out / LOSS_LOG, _checkpoint_step(last) if last else 0)
        return last
    if out.is_dir() and any(out.iterdir()) and not args.overwrite_output_dir:
        raise LlaraError(f"{out}: output_dir is not empty (pass --resume to continue a run or "
                         "--overwrite_output_dir to replace it)")
    if out.is_dir() and args.overwrite_output_dir and args.process_index == 0:
        (out / LOSS_LOG).unlink(missing_ok=True)
        for old in out.glob(f"{CHECKPOINT_PREFIX}*"):  # a stale later checkpoint would hijack a future --resume
            shutil.rmtree(old, ignore_errors=True)
    return None


def _checkpoint_step(path: str) -> int:
    return int(Path(path).name.rsplit("-", 1)[-1])


def _is_training_log(path: Path) -> bool:
    """What a run killed before its first complete checkpoint leaves: logs, curves, checkpoints, hidden temps."""
    return (path.name in TRAINING_LOGS or path.name.startswith(".")
            or (path.is_dir() and re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", path.name) is not None))


def is_complete_checkpoint(folder: Path) -> bool:
    """True when HF's Trainer finished writing ``folder``: ``trainer_state.json`` (written after the weights,
    optimizer and RNG states) parses, and weights are there."""
    try:
        json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(any(folder.glob(pattern)) for pattern in CHECKPOINT_WEIGHTS)


def resumable_checkpoint(output_dir: Path, remove_incomplete: bool = True) -> str | None:
    """The newest complete ``checkpoint-N`` of ``output_dir`` (None if there is none).

    Incomplete ones are skipped, and removed with ``remove_incomplete`` (the main process), since the resumed
    run writes the same ``checkpoint-N`` again.
    """
    if not output_dir.is_dir():
        return None
    found = [(int(p.name[len(CHECKPOINT_PREFIX):]), p) for p in output_dir.iterdir()
             if p.is_dir() and re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", p.name)]
    for _, folder in sorted(found, reverse=True):
        if is_complete_checkpoint(folder):
            return str(folder)
        warnings.warn(f"{folder}: incomplete checkpoint (no {TRAINER_STATE} or no weights: a run was stopped "
                      f"while writing it){'; removed' if remove_incomplete else ''}", LlaraWarning, stacklevel=3)
        if remove_incomplete:
            shutil.rmtree(folder, ignore_errors=True)
    return None


def save_encoder(model: torch.nn.Module, tokenizer, spec: EncoderSpec, output_dir: str | Path,
                 save_dtype: str | torch.dtype | None = None, provenance: dict | None = None,
                 bf16_weights: bool = False) -> Path:
    """Write ``output_dir`` as an encoder dir (and ``output_dir/adapter`` for a PEFT model).

    Args:
        save_dtype: a dtype the dir pins (``--save_dtype``); None records ``dtype: null``, so every machine
            loads it in its own best precision (``core/precision.py``), never the training dtype.
        bf16_weights: store unpinned weights in bfloat16 (training ran under bf16 autocast: half the
            disk, and what a bf16 machine loads anyway); otherwise they keep the training dtype.

    Files are staged in a temp dir and moved in; ``llara_config.json`` comes last, so a crash never
    leaves a dir that looks finished. Checkpoints and logs already in ``output_dir`` are kept.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {"base_model": spec.base_model, "adapter": spec.adapter, **(provenance or {})}
    dtype = parse_dtype(save_dtype, "save_dtype") if isinstance(save_dtype, str) else save_dtype
    stored = dtype or (torch.bfloat16 if bf16_weights else None)
    if hasattr(model, "merge_and_unload"):  # PEFT: save the adapter, then merge it for the full dir
        _save_adapter(model, spec, out / ADAPTER_DIR, provenance, dtype)
        model = model.merge_and_unload()
    model = model.to(stored) if stored is not None else model
    encoder = LlaraEncoder(model.eval(), tokenizer, replace(spec, dtype=None, provenance=provenance),
                           torch.device("cpu"))
    with temp_dir_beside(out / "encoder") as staging:  # hidden in out; a killed run's is removed by the next
        built = encoder.save_pretrained(staging / "encoder", dtype=dtype)
        (out / SPEC_FILE).unlink(missing_ok=True)
        for item in sorted(built.iterdir(), key=lambda p: p.name == SPEC_FILE):
            if (out / item.name).is_dir() and not (out / item.name).is_symlink():  # a folder of an earlier save
                shutil.rmtree(out / item.name)
            os.replace(item, out / item.name)
    return out


def _save_adapter(model, spec: EncoderSpec, path: Path, provenance: dict, dtype: torch.dtype | None) -> None:
    """PEFT adapter dir plus a spec naming the base, so ``LlaraEncoder.from_pretrained(path)`` loads it
    (``dtype``: the pinned one, or null)."""
    if spec.adapter:
        warnings.warn(f"the start model already had an adapter: the new adapter is saved without {SPEC_FILE} "
                      "(use the merged encoder dir)", LlaraWarning, stacklevel=2)
    with atomic_dir(path, replace=True) as tmp:
        # The LLaRA token rows are mean-initialised deterministically on load: no need to store embeddings.
        model.save_pretrained(tmp, save_embedding_layers=False)
        if not spec.adapter:
            replace(spec, adapter=".", dtype=dtype_name(dtype) if dtype else None,
                    provenance=provenance).save(tmp / SPEC_FILE)
