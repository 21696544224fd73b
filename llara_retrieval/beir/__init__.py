"""BEIR benchmarks for LLaRA encoders: a BEIR model wrapper, usable Faiss searchers, cached corpus
embeddings, BM25 and hybrid baselines, and the ``llara-beir`` command (``python -m llara_retrieval.beir``).

Imports are lazy so that ``import llara_retrieval.beir`` stays cheap.
"""
from importlib import import_module

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


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
