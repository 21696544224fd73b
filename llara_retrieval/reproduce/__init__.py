"""``make reproduce``: the LLaRA ablation (BM25, zero-shot, pretrain, finetune, pretrain -> finetune,
hybrid) end to end, resumable, with a table, a chart and the exact commands (``python -m
llara_retrieval.reproduce``)."""
from llara_retrieval._utils.lazy import lazy_getattr

_EXPORTS = {"ReproduceConfig": "llara_retrieval.reproduce.config", "plan": "llara_retrieval.reproduce.stages",
            "reproduce": "llara_retrieval.reproduce.pipeline"}
__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
