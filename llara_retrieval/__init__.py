"""llara-retrieval: LLaRA dense retrieval with decoder-only LLMs, for Pyserini, BEIR and training.

Imports are lazy so that ``import llara_retrieval`` (and the Pyserini hook installed with the package)
costs nothing until an encoder is actually used.
"""
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "LlaraEncoder": "encoder",
    "EncoderSpec": "spec",
    "LlaraPrompts": "prompts",
    "LlaraError": "errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
