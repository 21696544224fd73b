"""BEIR's Faiss searchers, made usable, and the exact inner-product search of our own runs.

BEIR 2.2.0's Faiss classes cannot be instantiated: their base ``BaseSearch`` declares ``encode`` and
``search_from_files`` abstract and the Faiss classes never implement them. Here they borrow BEIR's own
implementations from ``DenseRetrievalExactSearch``. Two more fixes: ``search`` asks Faiss for at most
as many hits as there are documents (Faiss pads with id -1, which BEIR maps to the last document),
and results no longer pile up across calls; ``score_function`` defaults to ``"dot"``.
"""
from __future__ import annotations

from beir.retrieval.search.dense import DenseRetrievalExactSearch
from beir.retrieval.search.dense import faiss_search as _beir


class UsableFaissMixin:
    """Put first in the bases of a BEIR Faiss searcher class."""

    show_progress_bar = True
    convert_to_tensor = False
    encode = DenseRetrievalExactSearch.encode
    search_from_files = DenseRetrievalExactSearch.search_from_files

    def search(self, corpus, queries, top_k: int, score_function: str = "dot", **kwargs):
        if not self.faiss_index:
            self.index(corpus, score_function)
        self.results = {}
        return super().search(corpus, queries, min(top_k, self.faiss_index.index.ntotal), score_function, **kwargs)


def _usable(cls: type) -> type:
    return type(cls.__name__, (UsableFaissMixin, cls), {"__module__": __name__, "__doc__": cls.__doc__})


FlatIPFaissSearch = _usable(_beir.FlatIPFaissSearch)
HNSWFaissSearch = _usable(_beir.HNSWFaissSearch)
HNSWSQFaissSearch = _usable(_beir.HNSWSQFaissSearch)
PQFaissSearch = _usable(_beir.PQFaissSearch)
SQFaissSearch = _usable(_beir.SQFaissSearch)
PCAFaissSearch = _usable(_beir.PCAFaissSearch)
BinaryFaissSearch = _usable(_beir.BinaryFaissSearch)
