"""BEIR benchmarks for LLaRA encoders: a BEIR model wrapper, usable Faiss searchers, cached corpus
embeddings, BM25 and hybrid baselines, and the ``llara-beir`` command (``python -m llara_retrieval.beir``).

Imports are lazy so that ``import llara_retrieval.beir`` stays cheap.
"""
from .._lazy import lazy_getattr

_EXPORTS = {
    "LlaraBeirModel": "model",
    "load_dataset": "data",
    "BeirDataset": "data",
    "LlaraWarning": "data",
    "run_beir": "run",
    "cached_corpus_embeddings": "cache",
    "FlatIPFaissSearch": "faiss_search",
    "HNSWFaissSearch": "faiss_search",
    "flat_search": "faiss_search",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
