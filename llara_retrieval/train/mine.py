"""``python -m llara_retrieval.train mine``: hard negatives for fine-tuning from a BEIR folder.

For each judged query of ``--split`` (qrels score > 0 = positive), retrieve the top ``--depth`` documents
with BM25 (Pyserini/Lucene) or a dense LLaRA encoder (Faiss, exact), drop every judged document (positive
or explicitly judged non-relevant: neither is a safe negative), keep ``--num_negatives`` of the rest
(``--sample random``, seeded, or the ``top`` ranked) and write ``{"query", "pos": [...], "neg": [...]}``
JSONL, with passages as ``title + " " + text``.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Mapping, Sequence

from ..cli_runner import run_cli
from ..errors import LlaraError
from ..evaluation import atomic_write

Run = dict[str, dict[str, float]]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m llara_retrieval.train mine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    p.add_argument("--output", required=True, help="training JSONL to write")
    p.add_argument("--split", default="train", help="qrels split whose queries are mined (default train)")
    p.add_argument("--method", choices=("bm25", "dense"), default="bm25", help="retriever (default bm25)")
    p.add_argument("--encoder", default=None, help="LLaRA encoder for --method dense (spec, dir, 'default')")
    p.add_argument("--depth", type=int, default=200, help="documents retrieved per query (default 200)")
    p.add_argument("--num_negatives", type=int, default=30, help="negatives kept per query (default 30)")
    p.add_argument("--sample", choices=("random", "top"), default="random",
                   help="keep a seeded random sample of the pool, or its top-ranked (default random)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch_size", type=int, default=32, help="dense encoding batch size")
    p.add_argument("--max_length", type=int, default=None, help="dense: passage max tokens incl. prompt")
    p.add_argument("--device", default=None, help="dense: cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=2, help="Lucene threads (default 2)")
    p.add_argument("--cache_dir", default=None, help="cache for BM25 indexes and corpus embeddings")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> None:
        stats = mine(args)
        print(f"mine: wrote {stats['records']} records to {args.output} (mean {stats['mean_negatives']:.1f} "
              f"negatives; {stats['skipped']} queries skipped: no positive in the corpus)", file=sys.stderr)

    return run_cli("mine", body)


def mine(args: argparse.Namespace) -> dict:
    from ..beir.data import load_dataset

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise LlaraError(f"{out}: already exists (pass --overwrite to replace it)")
    if args.depth < 1 or args.num_negatives < 0:
        raise LlaraError("--depth must be at least 1 and --num_negatives at least 0")
    if args.method == "dense" and not args.encoder:
        raise LlaraError("--method dense needs --encoder")
    ds = load_dataset(args.dataset, args.split, cache_dir=args.cache_dir)
    run = retrieve(ds, args)
    lines, stats = build_records(ds.queries, ds.qrels, ds.corpus, run, args.num_negatives, args.sample, args.seed)
    atomic_write(out, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in lines))
    return stats


def retrieve(ds, args: argparse.Namespace) -> Run:
    """Top ``--depth`` documents of each judged query."""
    if args.method == "bm25":
        from ..bm25 import bm25_search, build_bm25_index

        index = build_bm25_index(ds.root, cache_dir=args.cache_dir, threads=args.threads)
        return bm25_search(index, ds.queries, k=args.depth, threads=args.threads)
    from ..beir.dense import DenseRunner

    runner = DenseRunner(args.encoder, cache_dir=args.cache_dir, batch_size=args.batch_size,
                         max_length=args.max_length, device=args.device)
    return runner.run(ds, top_k=args.depth)


def passage(doc: Mapping[str, str]) -> str:
    title = (doc.get("title") or "").strip()
    return f"{title} {doc['text']}" if title else doc["text"]


def build_records(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]],
                  corpus: Mapping[str, Mapping[str, str]], run: Run, num_negatives: int, sample: str = "random",
                  seed: int = 42) -> tuple[list[dict], dict]:
    """Training records in query order; queries without a positive document in the corpus are skipped."""
    records, skipped = [], 0
    for qid, text in queries.items():
        judged = qrels.get(qid, {})
        positives = [d for d, rel in judged.items() if rel > 0 and d in corpus]
        if not positives:
            skipped += 1
            continue
        ranked = sorted(run.get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        pool = [d for d, _ in ranked if d not in judged and d in corpus]
        if sample == "random" and len(pool) > num_negatives:
            keep = sorted(random.Random(f"{seed}:{qid}").sample(range(len(pool)), num_negatives))
            pool = [pool[i] for i in keep]  # rank order kept
        records.append({"query": text, "pos": [passage(corpus[d]) for d in positives],
                        "neg": [passage(corpus[d]) for d in pool[:num_negatives]],
                        "query_id": qid, "pos_ids": positives, "neg_ids": pool[:num_negatives]})
    if not records:
        raise LlaraError("no judged query has a positive document in the corpus: nothing to train on")
    mean = sum(len(r["neg"]) for r in records) / max(len(records), 1)
    return records, {"records": len(records), "skipped": skipped, "mean_negatives": mean}
