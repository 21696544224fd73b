"""BEIR benchmarks for LLaRA encoders: a BEIR model wrapper, usable Faiss searchers, cached corpus
embeddings, BM25 and hybrid baselines, and the ``llara-beir`` command (``python -m llara_retrieval.beir``).

Imports are lazy so that ``import llara_retrieval.beir`` stays cheap.
"""
from llara_retrieval._utils.lazy import lazy_getattr

_EXPORTS = {
    "LlaraBeirModel": "llara_retrieval.beir.model",
    "run_beir": "llara_retrieval.beir.run",
    "FlatIPFaissSearch": "llara_retrieval.beir.faiss_search",
    "HNSWFaissSearch": "llara_retrieval.beir.faiss_search",
    # re-exported from the layers below, where they live
    "load_dataset": "llara_retrieval.retrieval.data",
    "BeirDataset": "llara_retrieval.retrieval.data",
    "LlaraWarning": "llara_retrieval._utils.errors",
    "cached_corpus_embeddings": "llara_retrieval.retrieval.embedding_cache",
    "flat_search": "llara_retrieval.retrieval.faiss_index",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
