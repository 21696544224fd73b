"""``python -m llara_retrieval.integrations``: convert encoder dirs for sentence-transformers; MTEB runs."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from llara_retrieval._utils.cli import run_cli

PROG = "python -m llara_retrieval.integrations"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="LLaRA encoders in sentence-transformers and MTEB.")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("sentence-transformers", help="add the sentence-transformers files to encoder dirs "
                        "(in place), so SentenceTransformer(DIR) loads them without trust_remote_code")
    st.add_argument("dirs", nargs="+", metavar="DIR", help="an encoder dir (llara_config.json + weights)")
    mt = sub.add_parser("mteb", help="MTEB retrieval scores of an encoder on a local BEIR folder (offline)")
    mt.add_argument("--encoder", required=True, help="encoder: spec .json, encoder/HF dir, .gguf, hub id or 'default'")
    mt.add_argument("--dataset", required=True, help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    mt.add_argument("--split", default="test", help="qrels split (default: test)")
    mt.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default: 32)")
    mt.add_argument("--max-length", type=int, help="passage max tokens (default: the encoder's)")
    mt.add_argument("--query-max-length", type=int, help="query max tokens (default: the encoder's)")
    mt.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    mt.add_argument("--dtype", help="float32, bfloat16 or float16 (default: the encoder's, else automatic)")
    mt.add_argument("--output", help="folder for MTEB's result files (default: none written)")
    mt.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> None:
        if args.command == "sentence-transformers":
            from llara_retrieval.integrations.sentence_transformers import export

            for folder in args.dirs:
                print(export(folder))
            return
        from llara_retrieval.integrations.mteb import evaluate_beir_folder

        scores = evaluate_beir_folder(args.encoder, args.dataset, split=args.split, batch_size=args.batch_size,
                                      max_length=args.max_length, query_max_length=args.query_max_length,
                                      device=args.device, dtype=args.dtype, output=args.output,
                                      show_progress_bar=not args.quiet)
        print(json.dumps(scores, indent=2, sort_keys=True))

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
