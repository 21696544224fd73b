"""MTEB 2.x: a LLaRA encoder in ``mteb.evaluate(...)``, and any local BEIR folder as an MTEB retrieval task.

``LlaraMtebEncoder`` implements MTEB's encoder protocol over ``LlaraEncoder``: inputs MTEB marks as
queries get the query prompt (EBAR), everything else (documents, and the single side of symmetric tasks
such as STS or clustering) the passage prompt (EBAE). Documents are encoded from their ``title`` and
``body`` columns through ``LlaraEncoder.passage_text``, the join ``llara-beir`` uses, so a BEIR folder
scores the same through MTEB as through ``python -m llara_retrieval.beir`` (same encoder and lengths).

Importing this module imports ``mteb`` (the rest of the package never does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.retrieval.data import load_dataset
from llara_retrieval.retrieval.runs import encoder_name

MAIN_SCORE = "ndcg_at_10"


class LlaraMtebEncoder(AbsEncoder):
    """A LLaRA encoder for ``mteb.evaluate``: the query prompt for queries, the passage prompt otherwise.

    Args:
        encoder: a loaded ``LlaraEncoder``, or anything ``LlaraEncoder.from_pretrained`` takes.
        max_length: passage max tokens (default: the spec's), as ``llara-beir --max-length``.
        query_max_length: query max tokens (default: the spec's), as ``llara-beir --query-max-length``.
        device, dtype: for loading ``encoder`` when it is not loaded yet.
        name: the model name MTEB records (default ``llara-retrieval/<encoder name>``).
    """

    def __init__(self, encoder: LlaraEncoder | str | Path | None = None, *, max_length: int | None = None,
                 query_max_length: int | None = None, device: str | None = None, dtype: str | None = None,
                 name: str | None = None):
        if isinstance(encoder, LlaraEncoder):
            self.encoder = encoder
            label = name or encoder_name(encoder.spec.base_model)
        else:
            self.encoder = LlaraEncoder.from_pretrained(encoder, device=device, dtype=dtype)
            label = name or encoder_name(encoder)
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.model = self.encoder
        self.mteb_model_meta = ModelMeta.create_empty({
            "name": label if "/" in label else f"llara-retrieval/{label}", "revision": "local",
            "embed_dim": self.encoder.dim, "similarity_fn_name": ScoringFunction.COSINE, "framework": ["PyTorch"],
            "max_tokens": max_length or self.encoder.spec.passage_max_length, "open_weights": True,
            "use_instructions": False})

    def encode(self, inputs, *, task_metadata: TaskMetadata, hf_split: str, hf_subset: str,
               prompt_type: PromptType | None = None, **kwargs: Any) -> np.ndarray:
        """``[n, dim]`` unit vectors of every input in ``inputs`` (an MTEB DataLoader), in order."""
        batch_size = int(kwargs.get("batch_size") or 32)
        show = kwargs.get("show_progress_bar")
        if prompt_type == PromptType.query:
            texts = [text for batch in inputs for text in batch["text"]]
            return self.encoder.encode_queries(texts, batch_size=batch_size, max_length=self.query_max_length,
                                               show_progress_bar=show)
        passages = [passage for batch in inputs for passage in _passages(batch)]
        return self.encoder.encode_passages(passages, batch_size=batch_size, max_length=self.max_length,
                                            show_progress_bar=show)


def _passages(batch: dict) -> list:
    """``{"title", "text"}`` records from a corpus batch (MTEB joins title and text with a space and strips
    the result; ours is the spec's ``title_separator``), else the batch's plain texts."""
    if "body" not in batch:
        return list(batch["text"])
    titles = batch.get("title") or [""] * len(batch["body"])
    return [{"title": title or "", "text": body} for title, body in zip(titles, batch["body"])]


def beir_task(dataset: str | Path, split: str = "test", name: str | None = None,
              languages: tuple[str, ...] = ("eng-Latn",)) -> AbsTaskRetrieval:
    """A BEIR-layout folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) as an MTEB
    retrieval task, read and checked by ``llara_retrieval.retrieval.data`` (no hub access).

    Args:
        dataset: the folder (or a BEIR dataset name ``llara-beir`` downloads).
        split: the qrels split to evaluate.
        name: the task name MTEB records (default ``LocalBEIR-<folder name>``).
        languages: the task's languages, as MTEB writes them (``eng-Latn``).
    """
    data = load_dataset(dataset, split)
    metadata = TaskMetadata(
        name=name or f"LocalBEIR-{data.name}", description=f"BEIR folder {data.root}, split {split}",
        dataset={"path": str(data.root), "revision": data.corpus_sha256[:16]}, type="Retrieval", category="t2t",
        modalities=["text"], eval_splits=[split], eval_langs=list(languages), main_score=MAIN_SCORE)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        from datasets import Dataset
        from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

        corpus = Dataset.from_dict({"id": list(data.corpus),
                                    "title": [doc.get("title") or "" for doc in data.corpus.values()],
                                    "text": [doc["text"] for doc in data.corpus.values()]})
        queries = Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())})
        self.dataset = {"default": {split: RetrievalSplitData(
            corpus=corpus, queries=queries, relevant_docs={q: dict(docs) for q, docs in data.qrels.items()},
            top_ranked=None)}}
        self.data_loaded = True

    task_class = type("LocalBeirTask", (AbsTaskRetrieval,), {"metadata": metadata, "load_data": load_data})
    return task_class()


def evaluate_beir_folder(encoder: LlaraEncoder | str | Path | None, dataset: str | Path, *, split: str = "test",
                         batch_size: int = 32, max_length: int | None = None, query_max_length: int | None = None,
                         device: str | None = None, dtype: str | None = None, output: str | Path | None = None,
                         show_progress_bar: bool = True) -> dict[str, float]:
    """Run ``mteb.evaluate`` with a LLaRA encoder on a local BEIR folder; returns MTEB's scores for the split
    (``ndcg_at_10`` is the main one). With ``output``, MTEB's result files go there (else nowhere)."""
    import mteb

    if batch_size < 1:
        raise LlaraError(f"batch_size must be at least 1, not {batch_size}")
    model = LlaraMtebEncoder(encoder, max_length=max_length, query_max_length=query_max_length, device=device,
                             dtype=dtype)
    task = beir_task(dataset, split)
    cache = mteb.ResultCache(output) if output is not None else None
    result = mteb.evaluate(model, task, cache=cache, overwrite_strategy="always", show_progress_bar=show_progress_bar,
                           encode_kwargs={"batch_size": batch_size, "show_progress_bar": show_progress_bar})
    scores = result.task_results[0].scores[split][0]
    return {key: value for key, value in scores.items() if isinstance(value, (int, float))}
