"""``llara-beir`` / ``python -m llara_retrieval.beir``: BEIR runs, metrics and a results table."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from llara_retrieval._utils.cli import run_cli
from llara_retrieval.retrieval.fusion import DEFAULT_NORMALISATION, DENSE_WEIGHT, NORMALISATIONS, RRF_K

PROG = "llara-beir"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Evaluate a LLaRA encoder (and BM25 / hybrid baselines) on "
                                "BEIR datasets: TREC runs, metrics JSON and a markdown + CSV table in --output.")
    p.add_argument("--dataset", action="append", required=True, metavar="D",
                   help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a BEIR dataset name to download; "
                        "repeat for several")
    p.add_argument("--encoder", help="encoder: spec .json, encoder/HF dir, .gguf, hub id or 'default'")
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument("--output", default="runs", help="folder for runs, metrics and results.md/.csv (default: runs)")
    p.add_argument("--bm25", action="store_true", help="add the Pyserini BM25 baseline (flat index, k1=0.9 b=0.4)")
    p.add_argument("--hybrid", action="store_true",
                   help="add RRF and linear fusion of BM25 and the encoder (implies --bm25)")
    p.add_argument("--hybrid-weight", type=float, default=DENSE_WEIGHT,
                   help=f"dense weight of the linear fusion of normalised scores (default: {DENSE_WEIGHT})")
    p.add_argument("--hybrid-normalisation", choices=list(NORMALISATIONS), default=DEFAULT_NORMALISATION,
                   help=f"per-query score normalisation of the linear fusion (default: {DEFAULT_NORMALISATION})")
    p.add_argument("--rrf-k", type=int, default=RRF_K, help=f"reciprocal rank fusion constant (default: {RRF_K})")
    p.add_argument("--top-k", type=int, default=1000, help="hits per query (default: 1000)")
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default: 32)")
    p.add_argument("--max-length", type=int, help="passage max tokens: the whole sequence, or the text alone, as the "
                   "spec's length_budget says (default: the encoder's)")
    p.add_argument("--query-max-length", type=int, help="query max tokens (as --max-length; default: the encoder's)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--dtype", help="float32, bfloat16 or float16 (default: the encoder's, else automatic)")
    p.add_argument("--cache-dir", help="cache for embeddings, BM25 indexes and downloads "
                                       "(default: $LLARA_CACHE_DIR or ~/.cache/llara-retrieval)")
    p.add_argument("--chunk-size", type=int, default=256, help="documents per cached embedding chunk (default: 256)")
    p.add_argument("--threads", type=int, default=2, help="Lucene indexing/search threads (default: 2)")
    p.add_argument("--overwrite", action="store_true", help="replace output files that llara-beir did not write")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress messages")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from llara_retrieval.beir.run import run_beir

    def body() -> None:
        run_beir(args.dataset, args.encoder, args.output, split=args.split, bm25=args.bm25, hybrid=args.hybrid,
                 top_k=args.top_k, batch_size=args.batch_size, max_length=args.max_length,
                 query_max_length=args.query_max_length, hybrid_weight=args.hybrid_weight,
                 hybrid_normalisation=args.hybrid_normalisation, rrf_k=args.rrf_k,
                 cache_dir=args.cache_dir, device=args.device, dtype=args.dtype, chunk_size=args.chunk_size,
                 threads=args.threads, overwrite=args.overwrite, show_progress_bar=not args.quiet)

    return run_cli(PROG, body, interrupted="finished embedding chunks are cached, rerun to resume")


if __name__ == "__main__":
    sys.exit(main())
