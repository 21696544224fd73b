"""llara-retrieval: LLaRA dense retrieval with decoder-only LLMs, for Pyserini, BEIR and training.

Imports are lazy so that ``import llara_retrieval`` (and the Pyserini hook installed with the package)
costs nothing until an encoder is actually used.
"""
from llara_retrieval._utils.lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "LlaraEncoder": "llara_retrieval.core.encoder",
    "EncoderSpec": "llara_retrieval.core.spec",
    "LlaraPrompts": "llara_retrieval.core.prompts",
    "LlaraError": "llara_retrieval._utils.errors",
    "LlaraWarning": "llara_retrieval._utils.errors",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
