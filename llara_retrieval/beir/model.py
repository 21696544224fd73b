"""LlaraBeirModel: the BEIR model protocol (``encode_queries`` / ``encode_corpus``) over LlaraEncoder,
so LLaRA plugs into BEIR's ``DenseRetrievalExactSearch`` and Faiss searchers unchanged."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.encoder import LlaraEncoder

Corpus = Sequence[Mapping[str, str] | str] | Mapping[str, Sequence[str]]


class LlaraBeirModel:
    """BEIR-compatible wrapper. Vectors are already L2-normalised, so ``cos_sim`` and ``dot`` rank
    alike and BEIR's ``normalize_embeddings`` is a no-op; other BEIR keyword arguments are accepted."""

    def __init__(self, encoder: LlaraEncoder | str | Path | None = None, query_max_length: int | None = None,
                 passage_max_length: int | None = None, device: str | None = None, dtype: str | None = None):
        self.encoder = encoder if isinstance(encoder, LlaraEncoder) else LlaraEncoder.from_pretrained(
            encoder, device=device, dtype=dtype)
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length

    def encode_queries(self, queries: Sequence[str], batch_size: int = 32, show_progress_bar: bool | None = None,
                       convert_to_tensor: bool = False, **kwargs):
        """``[n, dim]`` query vectors (a torch tensor if ``convert_to_tensor``, as sentence-transformers)."""
        vectors = self.encoder.encode_queries(list(queries), batch_size=batch_size, max_length=self.query_max_length,
                                              show_progress_bar=show_progress_bar)
        return _output(vectors, convert_to_tensor)

    def encode_corpus(self, corpus: Corpus, batch_size: int = 32, show_progress_bar: bool | None = None,
                      convert_to_tensor: bool = False, **kwargs):
        """``[n, dim]`` passage vectors of BEIR records (a list of ``{"title","text"}`` dicts, a dict of
        ``"title"``/``"text"`` lists, or plain strings)."""
        vectors = self.encoder.encode_passages(as_records(corpus), batch_size=batch_size,
                                               max_length=self.passage_max_length, show_progress_bar=show_progress_bar)
        return _output(vectors, convert_to_tensor)


def as_records(corpus: Corpus) -> list:
    """BEIR passes either a list of records or (in some versions) a dict of columns."""
    if isinstance(corpus, Mapping):
        if "text" not in corpus:
            raise LlaraError("encode_corpus: a dict corpus needs a 'text' list")
        titles = corpus.get("title") or [""] * len(corpus["text"])
        return [{"title": t or "", "text": x} for t, x in zip(titles, corpus["text"])]
    return list(corpus)


def _output(vectors: np.ndarray, convert_to_tensor: bool):
    if convert_to_tensor:
        import torch
        return torch.from_numpy(vectors)
    return vectors
