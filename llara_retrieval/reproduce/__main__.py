"""``llara-reproduce`` / ``python -m llara_retrieval.reproduce``: every ``ReproduceConfig`` field is a flag."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from typing import Sequence

from llara_retrieval._utils.cli import run_cli
from llara_retrieval.reproduce.stages import ReproduceConfig

PROG = "llara-reproduce"
HELP = {
    "model": "start model: encoder spec, HF/encoder dir, .gguf, hub id or 'default'",
    "dataset": "BEIR folder with train and test qrels (corpus.jsonl, queries.jsonl, qrels/)",
    "pretrain_text": "running text for pretraining (files accepted by `train prepare`)",
    "output": "folder for runs, models, logs, results.md/png and commands.md (resumes a run already there)",
    "train_split": "qrels split mined for fine-tuning",
    "pretrain_args": "extra flags appended to the pretrain command (e.g. '--bf16 --gradient_checkpointing')",
    "finetune_args": "extra flags appended to both finetune commands (e.g. '--bf16 --deepspeed configs/ds_zero1.json')",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="The LLaRA ablation end to end: BM25, zero-shot, pretrain, "
                                "finetune, pretrain -> finetune and a hybrid, as TREC runs, a table, a chart and the "
                                "exact commands. Rerun the same command to resume.")
    for f in fields(ReproduceConfig):
        required = f.default is MISSING
        default = None if required else f.default
        listed = f.type.startswith("list")
        kind = str if default is None or listed else type(default)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default, required=required,
                       nargs="+" if listed else None, metavar=f.name.split("_")[-1].upper(),
                       help=HELP.get(f.name, f.name.replace("_", " ")) + ("" if required else f" (default: {default})"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    config = ReproduceConfig(**vars(parser().parse_args(argv)))
    from llara_retrieval.reproduce.pipeline import reproduce

    def body() -> None:
        print(reproduce(config).read_text(encoding="utf-8"))

    return run_cli(PROG, body, interrupted="run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
