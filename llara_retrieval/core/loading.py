"""Resolve what a user names (default, spec file, encoder dir, HF dir, GGUF, adapter dir, hub id) and
load the model and tokenizer with the LLaRA special tokens in place.

Every failure to load (a missing, garbled or truncated ``model.safetensors``, a bad adapter) is one
:class:`LlaraError` line for every entry point; weights load only from safetensors, never from pickles.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError

from llara_retrieval._utils.errors import LlaraError, at, first_line
from llara_retrieval._utils.text import read_text
from llara_retrieval.core.spec import SPEC_FILE, EncoderSpec, is_spec_file

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLED_ADAPTER = "adapter_model.bin"
# What a missing, garbled or truncated model file raises inside transformers, safetensors, gguf and PEFT.
LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, EOFError, SafetensorError)


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """Around a peft call: peft reads ``is_gradient_checkpointing``, which transformers 5 deprecates with a
    FutureWarning on every LoRA load; nothing a user can act on, so it stays out of their log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing.* deprecated", FutureWarning)
        yield


def resolve_spec(name_or_path: str | Path | None) -> EncoderSpec:
    """The spec that describes ``name_or_path``; nothing is loaded yet."""
    if name_or_path is None or str(name_or_path) == "default":
        return EncoderSpec()
    path = Path(name_or_path).expanduser()
    if is_spec_file(path):
        return EncoderSpec.load(path)
    if path.is_file() and path.suffix == ".gguf":
        return EncoderSpec(base_model=str(path.resolve()))
    if path.is_dir():
        if (path / SPEC_FILE).is_file():
            return EncoderSpec.load(path / SPEC_FILE)
        if (path / ADAPTER_CONFIG).is_file():
            base = _adapter_config(path / ADAPTER_CONFIG).get("base_model_name_or_path")
            if not base:
                raise LlaraError(f"{path / ADAPTER_CONFIG}: adapter does not name its base model")
            return replace(resolve_spec(base), adapter=str(path.resolve()))
        if (path / "config.json").is_file():
            return EncoderSpec(base_model=str(path.resolve()))
        raise LlaraError(f"{path}: not a model dir (no {SPEC_FILE}, config.json or adapter_config.json)")
    if path.exists():
        raise LlaraError(f"{path}: not an encoder (expected a dir, a .json spec or a .gguf file)")
    if str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") > 1:
        raise LlaraError(f"{name_or_path}: no such file or directory")
    return EncoderSpec(base_model=str(name_or_path))  # a hub id


def _adapter_config(path: Path) -> dict:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise LlaraError(f"{at(path, exc.lineno)}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LlaraError(f"{path}: expected a JSON object")
    return data


def local_adapter_dir(adapter: str) -> Path:
    """The local folder of a PEFT adapter, holding its weights as safetensors (fetched from the hub if named).

    Weights load only from safetensors: an adapter saved only as ``adapter_model.bin`` (a pickle) is refused
    before anything is read from it.
    """
    path = Path(adapter).expanduser()
    if not path.is_dir():
        if str(adapter).startswith((".", "/", "~")):
            raise LlaraError(f"{adapter}: no such adapter folder")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(str(adapter), allow_patterns=[ADAPTER_CONFIG, ADAPTER_WEIGHTS]))
        except Exception as exc:  # offline, unknown repo, ...
            raise LlaraError(f"cannot fetch adapter {adapter!r}: {first_line(exc)}") from None
    if not (path / ADAPTER_WEIGHTS).is_file():
        found = "only adapter_model.bin, a pickle that is never loaded" if (path / PICKLED_ADAPTER).exists() \
            else "none"
        raise LlaraError(f"{path}: adapter weights load only from {ADAPTER_WEIGHTS} (found {found}); "
                         "re-save the adapter with safe_serialization=True")
    return path


def add_llara_tokens(model: torch.nn.Module, tokenizer, tokens: list[str]) -> None:
    """Add the special tokens (if missing) and give new embedding rows the mean of the old ones.

    Mean initialisation is deterministic, so an untrained encoder gives the same vectors every time.
    """
    tokenizer.add_tokens([t for t in tokens if t not in tokenizer.get_vocab()], special_tokens=True)
    old_rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old_rows:
        return
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for emb in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
            emb.weight[old_rows:] = emb.weight[:old_rows].mean(dim=0, keepdim=True)


def _load_base(base: str, gguf_file: str | None, dtype: torch.dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llara_retrieval.core.default_model import ensure_default_model, load_gguf

    if base == "default":
        base = str(ensure_default_model())
    if gguf_file:  # a GGUF file inside a model folder
        base = str(Path(base) / gguf_file)
    if base.endswith(".gguf"):
        try:
            model, tokenizer = load_gguf(Path(base))
        except LOAD_ERRORS as exc:
            raise LlaraError(f"cannot load GGUF model {base!r}: {first_line(exc)}") from None
        return model.to(dtype), tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code)
    except LOAD_ERRORS as exc:
        raise LlaraError(f"cannot load model {base!r}: {first_line(exc)}") from None
    return model, tokenizer


def load_model(spec: EncoderSpec, dtype: torch.dtype, trust_remote_code: bool = False):
    """Causal LM and tokenizer for ``spec``: base model, special tokens, then the adapter merged in."""
    adapter = local_adapter_dir(spec.adapter) if spec.adapter else None  # refused before the base loads
    model, tokenizer = _load_base(spec.base_model, spec.gguf_file, dtype, trust_remote_code)
    add_llara_tokens(model, tokenizer, spec.prompts.special_tokens)
    if adapter is not None:
        from peft import PeftModel

        try:
            with peft_quietly():
                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        except LOAD_ERRORS as exc:
            raise LlaraError(f"cannot load adapter {spec.adapter!r}: {first_line(exc)}") from None
    return model.eval(), tokenizer
