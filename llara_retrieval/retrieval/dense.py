"""LLaRA dense runs for BEIR datasets: cached corpus vectors, fresh query vectors, exact search."""
from __future__ import annotations

from pathlib import Path

from llara_retrieval._utils.cache_dir import cache_root
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.retrieval.data import BeirDataset
from llara_retrieval.retrieval.embedding_cache import cached_corpus_embeddings, encoder_key
from llara_retrieval.retrieval.faiss_index import flat_search
from llara_retrieval.retrieval.runs import Run, encoder_name


class DenseRunner:
    """Loads the encoder once; corpus vectors live in ``<cache>/embeddings`` and are reused."""

    def __init__(self, encoder: str | Path | None, cache_dir: str | Path | None = None, batch_size: int = 32,
                 max_length: int | None = None, query_max_length: int | None = None, device: str | None = None,
                 dtype: str | None = None, chunk_size: int = 256):
        self.name = str(encoder)
        self.encoder = LlaraEncoder.from_pretrained(encoder, device=device, dtype=dtype)
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.key = encoder_key(self.encoder, max_length)
        self.folder = cache_root(cache_dir) / "embeddings" / f"{encoder_name(encoder)}-{self.key[:16]}"
        self.batch_size = batch_size
        self.chunk_size = chunk_size

    def corpus_vectors(self, ds: BeirDataset, show_progress_bar: bool = True):
        folder = self.folder / f"{ds.name}-{ds.corpus_sha256[:16]}"

        def encode(records):
            return self.encoder.encode_passages(records, batch_size=self.batch_size, max_length=self.max_length,
                                                show_progress_bar=False)

        return cached_corpus_embeddings(encode, ds.corpus, folder, self.batch_size, self.chunk_size,
                                        show_progress_bar)

    def run(self, ds: BeirDataset, top_k: int, show_progress_bar: bool = True) -> Run:
        doc_ids, doc_vectors = self.corpus_vectors(ds, show_progress_bar)
        qids = list(ds.queries)
        query_vectors = self.encoder.encode_queries([ds.queries[q] for q in qids], batch_size=self.batch_size,
                                                    max_length=self.query_max_length,
                                                    show_progress_bar=show_progress_bar)
        return flat_search(query_vectors, qids, doc_vectors, doc_ids, top_k)
