"""Training output folders: refuse to overwrite, find the checkpoint to resume, write the final encoder dir
(merged weights + tokenizer + the sentence-transformers files + ``llara_config.json``, written last) and,
for LoRA, ``output_dir/adapter``."""
from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from transformers.trainer_utils import get_last_checkpoint

from llara_retrieval._utils.atomic import atomic_dir
from llara_retrieval._utils.errors import LlaraError, LlaraWarning
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.core.precision import dtype_name, parse_dtype
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec
from llara_retrieval.train.arguments import LlaraTrainingArguments
from llara_retrieval.train.callbacks import LOSS_LOG, trim_loss_log

ADAPTER_DIR = "adapter"


def prepare_output_dir(args: LlaraTrainingArguments) -> str | None:
    """Check ``output_dir`` is safe to write; with ``--resume`` return the last checkpoint (None: start)."""
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise LlaraError(f"{out}: output_dir exists and is not a directory")
    if args.resume:
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            warnings.warn(f"--resume: no checkpoint in {out}, starting from scratch", LlaraWarning, stacklevel=2)
        trim_loss_log(out / LOSS_LOG, _checkpoint_step(last) if last else 0)
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


def save_encoder(model: torch.nn.Module, tokenizer, spec: EncoderSpec, output_dir: str | Path,
                 save_dtype: str | torch.dtype | None = None, provenance: dict | None = None) -> Path:
    """Write ``output_dir`` as an encoder dir (and ``output_dir/adapter`` for a PEFT model).

    Files are staged in a temp dir and moved in; ``llara_config.json`` comes last, so a crash never
    leaves a dir that looks finished. Checkpoints and logs already in ``output_dir`` are kept.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {"base_model": spec.base_model, "adapter": spec.adapter, **(provenance or {})}
    dtype = parse_dtype(save_dtype, "save_dtype") if isinstance(save_dtype, str) else save_dtype
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
            if (out / item.name).is_dir() and not (out / item.name).is_symlink():  # a folder of an earlier save
                shutil.rmtree(out / item.name)
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _save_adapter(model, spec: EncoderSpec, path: Path, provenance: dict, dtype: torch.dtype | None) -> None:
    """PEFT adapter dir plus a spec naming the base, so ``LlaraEncoder.from_pretrained(path)`` loads it."""
    if spec.adapter:
        warnings.warn(f"the start model already had an adapter: the new adapter is saved without {SPEC_FILE} "
                      "(use the merged encoder dir)", LlaraWarning, stacklevel=2)
    with atomic_dir(path, replace=True) as tmp:
        # The LLaRA token rows are mean-initialised deterministically on load: no need to store embeddings.
        model.save_pretrained(tmp, save_embedding_layers=False)
        if not spec.adapter:
            dtype = dtype or next(model.parameters()).dtype
            replace(spec, adapter=".", dtype=dtype_name(dtype), provenance=provenance).save(tmp / SPEC_FILE)
