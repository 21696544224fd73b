"""Pyserini encoder classes for LLaRA: thin wrappers over :class:`~llara_retrieval.LlaraEncoder`.

They take the arguments Pyserini passes (``model_name`` / ``encoder_dir``, ``device``, …) and return
what Pyserini expects, so ``FaissSearcher(index_dir, LlaraQueryEncoder("encoders/x.json"))`` works.
Pass ``encoder=`` to share one loaded model between the document and the query side.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from pyserini.encode import DocumentEncoder, QueryEncoder

from llara_retrieval.core.encoder import LlaraEncoder


def _load(name: str | Path | None, encoder: LlaraEncoder | None, device, dtype) -> LlaraEncoder:
    if encoder is not None:
        return encoder
    return LlaraEncoder.from_pretrained(name, device=None if device in (None, "auto") else str(device), dtype=dtype)


class LlaraDocumentEncoder(DocumentEncoder):
    """Passage side (EBAE prompt); ``encode(texts, titles=None, max_length=…)`` as ``pyserini.encode`` calls it."""

    def __init__(self, model_name: str | Path | None = None, device: str | None = None, dtype: str | None = None,
                 encoder: LlaraEncoder | None = None, batch_size: int = 32, **_pyserini_kwargs):
        self.encoder = _load(model_name, encoder, device, dtype)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], titles: Sequence[str] | None = None, max_length: int | None = None,
               **_pyserini_kwargs) -> np.ndarray:
        titles = titles if titles is not None else [""] * len(texts)
        passages = [{"title": title or "", "text": text or ""} for title, text in zip(titles, texts)]
        return self.encoder.encode_passages(passages, self.batch_size, max_length)


class LlaraQueryEncoder(QueryEncoder):
    """Query side (EBAR prompt); ``encode(query)`` gives one vector, ``encode_batch(queries)`` a matrix."""

    def __init__(self, encoder_dir: str | Path | None = None, device: str | None = None, dtype: str | None = None,
                 encoder: LlaraEncoder | None = None, max_length: int | None = None, batch_size: int = 32,
                 **_pyserini_kwargs):
        super().__init__()
        self.encoder = _load(encoder_dir, encoder, device, dtype)
        self.has_model = True
        self.max_length = max_length
        self.batch_size = batch_size

    def encode(self, query: str, **_pyserini_kwargs) -> np.ndarray:
        return self.encode_batch([query])[0]

    def encode_batch(self, queries: Sequence[str], **_pyserini_kwargs) -> np.ndarray:
        return self.encoder.encode_queries(list(queries), self.batch_size, self.max_length)
