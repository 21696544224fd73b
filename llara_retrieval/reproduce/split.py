"""``python -m llara_retrieval.reproduce.split``: the ``split`` stage of ``make reproduce``, a seeded dev split of
the train queries written as a BEIR view folder (see :mod:`llara_retrieval.retrieval.splits`)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from llara_retrieval._utils.cli import run_cli

PROG = "llara-reproduce split"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Carve a seeded dev split out of a BEIR dataset's train "
                                "queries: a view folder with qrels/fit.tsv and qrels/dev.tsv (the dataset folder "
                                "is only read).")
    p.add_argument("--dataset", required=True, help="BEIR folder or dataset name")
    p.add_argument("--split", default="train", help="qrels split to carve (default: train)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of its judged queries for dev (default: 0.1)")
    p.add_argument("--seed", type=int, default=13, help="seed of the draw (default: 13)")
    p.add_argument("--output", required=True, help="the view folder to write (replaced if it exists)")
    p.add_argument("--cache_dir", help="where a dataset given by name is downloaded")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from llara_retrieval.retrieval.splits import carve_dev_split

    def body() -> None:
        split = carve_dev_split(args.dataset, args.output, args.split, args.fraction, args.seed, args.cache_dir)
        print(f"{PROG}: {len(split.dev)} dev and {len(split.fit)} fit queries in {split.root}", file=sys.stderr)

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
