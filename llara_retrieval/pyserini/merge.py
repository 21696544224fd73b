"""``python -m llara_retrieval.merge``: one Faiss index dir from the shard outputs of a sharded encode.

    python -m llara_retrieval.merge --shards emb/shard0 emb/shard1 --output indexes/my-index [--hnsw]

Shards may be ``--to-faiss`` dirs or ``embeddings.jsonl`` dirs; they are concatenated in the order given
(``--shard-id`` order keeps Pyserini's document order). ``--hnsw`` builds an approximate HNSW index
(search it with ``--ef-search``) instead of the exact flat one.
"""
from __future__ import annotations

import argparse
import sys

from llara_retrieval._utils.cli import run_cli
from llara_retrieval.retrieval.faiss_index import merge_shards

PROG = "llara_retrieval.merge"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", nargs="+", required=True, help="shard output dirs, in shard order")
    parser.add_argument("--output", required=True, help="index dir to write (index + docid)")
    parser.add_argument("--hnsw", action="store_true", help="HNSW instead of a flat (exact) index")
    parser.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree M")
    parser.add_argument("--ef-construction", type=int, default=200, help="HNSW efConstruction")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index in --output")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        merge_shards(args.shards, args.output, args.hnsw, args.hnsw_m, args.ef_construction, args.overwrite)
        print(f"{PROG}: wrote {args.output}", file=sys.stderr)

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
