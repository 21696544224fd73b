"""``python -m llara_retrieval.train mine``: hard negatives for fine-tuning from a BEIR folder.

For each judged query of ``--split`` (qrels score > 0 = positive), retrieve the top ``--depth`` documents
with BM25 (Pyserini/Lucene) or a dense LLaRA encoder (Faiss, exact), drop every judged document (positive
or explicitly judged non-relevant: neither is a safe negative), keep ``--num_negatives`` of the rest
(``--sample random``, seeded, or the ``top`` ranked) and write ``{"query", "pos": [...], "neg": [...]}``
JSONL, with passages as ``--encoder``'s spec formats them (``format_passage``: ``title + " " + text`` by
default, the text alone for the released checkpoints' specs), so training sees what serving encodes.
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.loading import resolve_spec
from llara_retrieval.core.prompts import format_passage
from llara_retrieval.retrieval.runs import Run, ranked
from llara_retrieval.train.trainer import cli_main


@dataclass
class MineArguments:
    """What ``mine`` reads, retrieves and writes."""

    dataset: str = field(metadata={"help": "BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)"})
    output: str = field(metadata={"help": "training JSONL to write"})
    split: str = field(default="train", metadata={"help": "qrels split whose queries are mined"})
    method: str = field(default="bm25", metadata={"help": "retriever", "choices": ["bm25", "dense"]})
    encoder: str | None = field(default=None, metadata={
        "help": "LLaRA encoder: retrieves with --method dense; its spec's title_separator formats the passages "
                "written, with either method (default: title + ' ' + text)"})
    depth: int = field(default=200, metadata={"help": "documents retrieved per query"})
    num_negatives: int = field(default=30, metadata={"help": "negatives kept per query"})
    sample: str = field(default="random", metadata={"help": "keep a seeded random sample of the pool, or its "
                                                            "top-ranked", "choices": ["random", "top"]})
    seed: int = 42
    batch_size: int = field(default=32, metadata={"help": "dense encoding batch size"})
    max_length: int | None = field(default=None, metadata={"help": "dense: passage max tokens incl. prompt"})
    device: str | None = field(default=None, metadata={"help": "dense: cpu, cuda or cuda:N"})
    threads: int = field(default=2, metadata={"help": "Lucene threads"})
    cache_dir: str | None = field(default=None, metadata={"help": "cache for BM25 indexes and corpus embeddings"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})


ARGUMENT_TYPES = (MineArguments,)  # the flags of `train mine`


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main("mine", ARGUMENT_TYPES, _mine_and_report, argv)


def _mine_and_report(args: MineArguments) -> None:
    stats = mine(args)
    print(f"mine: wrote {stats['records']} records to {args.output} (mean {stats['mean_negatives']:.1f} "
          f"negatives; {stats['skipped']} queries skipped: no positive in the corpus)", file=sys.stderr)


def mine(args: MineArguments) -> dict:
    """Mine hard negatives as ``args`` say and write the training JSONL atomically.

    Returns:
        ``{"records", "mean_negatives", "skipped"}``.
    """
    from llara_retrieval.retrieval.data import load_dataset

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise LlaraError(f"{out}: already exists (pass --overwrite to replace it)")
    if args.depth < 1 or args.num_negatives < 0:
        raise LlaraError("--depth must be at least 1 and --num_negatives at least 0")
    if args.method == "dense" and not args.encoder:
        raise LlaraError("--method dense needs --encoder")
    ds = load_dataset(args.dataset, args.split, cache_dir=args.cache_dir)
    if not any(positives_in_corpus(judged, ds.corpus) for judged in ds.qrels.values()):
        raise LlaraError(f"{ds.qrels_file}: no judged query has a positive document in {ds.corpus_file}: "
                         "nothing to train on")
    run = retrieve(ds, args)
    separator = resolve_spec(args.encoder).title_separator  # no encoder: the default spec's
    lines, stats = build_records(ds.queries, ds.qrels, ds.corpus, run, args.num_negatives, args.sample, args.seed,
                                 separator)
    atomic_write(out, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in lines))
    return stats


def retrieve(ds, args: MineArguments) -> Run:
    """Top ``--depth`` documents of each judged query."""
    if args.method == "bm25":
        from llara_retrieval.pyserini.bm25 import bm25_search, build_bm25_index

        index = build_bm25_index(ds.root, cache_dir=args.cache_dir, threads=args.threads)
        return bm25_search(index, ds.queries, k=args.depth, threads=args.threads)
    from llara_retrieval.retrieval.dense import DenseRunner

    runner = DenseRunner(args.encoder, cache_dir=args.cache_dir, batch_size=args.batch_size,
                         max_length=args.max_length, device=args.device)
    return runner.run(ds, top_k=args.depth)


def positives_in_corpus(judged: Mapping[str, int], corpus: Mapping[str, Mapping[str, str]]) -> list[str]:
    """A query's positive documents that the corpus holds: the ones a training record can use."""
    return [d for d, rel in judged.items() if rel > 0 and d in corpus]


def build_records(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                  corpus: Mapping[str, Mapping[str, str]], run: Run, num_negatives: int, sample: str = "random",
                  seed: int = 42, title_separator: str | None = " ") -> tuple[list[dict], dict]:
    """Training records in query order; queries without a positive document in the corpus are skipped.
    Passages are ``format_passage(doc, title_separator)``."""
    def passage(doc_id: str) -> str:
        return format_passage(corpus[doc_id], title_separator, f"document {doc_id}")

    records, skipped = [], 0
    for qid, text in queries.items():
        judged = qrels.get(qid, {})
        positives = positives_in_corpus(judged, corpus)
        if not positives:
            skipped += 1
            continue
        pool = [d for d in ranked(run.get(qid, {})) if d not in judged and d in corpus]
        if sample == "random" and len(pool) > num_negatives:
            keep = sorted(random.Random(f"{seed}:{qid}").sample(range(len(pool)), num_negatives))
            pool = [pool[i] for i in keep]  # rank order kept
        records.append({"query": text, "pos": [passage(d) for d in positives],
                        "neg": [passage(d) for d in pool[:num_negatives]],
                        "query_id": qid, "pos_ids": positives, "neg_ids": pool[:num_negatives]})
    mean = sum(len(r["neg"]) for r in records) / max(len(records), 1)
    return records, {"records": len(records), "skipped": skipped, "mean_negatives": mean}
