"""``llara-reproduce`` / ``python -m llara_retrieval.reproduce``: every ``ReproduceConfig`` field is a flag."""
from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields
from typing import Sequence

from llara_retrieval._utils.cli import run_cli
from llara_retrieval.reproduce.config import ReproduceConfig

PROG = "llara-reproduce"
HELP = {
    "model": "start model: encoder spec, HF/encoder dir, .gguf, hub id or 'default'",
    "dataset": "BEIR folder with train and test qrels (corpus.jsonl, queries.jsonl, qrels/)",
    "pretrain_text": "running text for pretraining (files accepted by `train prepare`; a corpus.jsonl gives chunks "
                     "of the corpus)",
    "output": "folder for runs, models, logs, results.md/png and commands.md (resumes a run already there)",
    "train_split": "qrels split the dev split is carved from and negatives are mined from",
    "test": "evaluate the test split (--no-test: a dev-only run, for comparing recipes)",
    "dev_fraction": "share of the train queries held out as the dev split",
    "dev_seed": "seed of the dev split's draw",
    "seeds": "fine-tuning seeds of systems 4 and 5 (each one a full run; resumable seed by seed)",
    "systems": "fine-tuned rows to train: 4 (base -> finetune), 5 (base -> pretrain -> finetune); an ablation of a "
               "lever for one of them can leave the other out",
    "negative_rounds": "rounds of fine-tuning: round 1 on BM25 negatives, each later one on negatives mined with "
                       "the previous round's model",
    "finetune_steps": "fine-tuning steps (used when --finetune-epochs is 0)",
    "finetune_epochs": "epochs over the fit queries (> 0 overrides --finetune-steps)",
    "lr_scheduler": "learning-rate schedule of fine-tuning: linear, cosine, constant, constant_with_warmup",
    "warmup_ratio": "share of the fine-tuning steps spent warming up",
    "hybrid_weights": "dense weights of linear fusion tried on the dev split",
    "hybrid_normalisations": "per-query score normalisations of linear fusion tried on the dev split",
    "grad_cache_chunk": "GradCache chunk of fine-tuning (sequences per forward/backward; 0 = the whole batch at once)",
    "permutation_rounds": "rounds of the paired randomisation test",
    "stats_seed": "seed of the paired randomisation test",
    "compare": "other output folders (other recipes) to put in the ablation table",
    "until": "stop after this stage (finish a run over several sessions: rerun with a later stage, or without)",
    "pretrain_args": "extra flags appended to the pretrain command (e.g. '--bf16 --gradient_checkpointing')",
    "finetune_args": "extra flags appended to every finetune command (e.g. '--bf16 --deepspeed configs/ds_zero1.json')",
}
TYPES = {"int": int, "float": float, "str": str}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="The LLaRA ablation end to end: BM25, zero-shot, pretrain, "
                                "finetune, pretrain -> finetune (several seeds) and a hybrid chosen on a dev split, as "
                                "TREC runs, a table with paired tests, a chart and the exact commands. Rerun the "
                                "same command to resume.")
    for f in fields(ReproduceConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        required = default is MISSING
        value = " ".join(map(str, default)) if isinstance(default, list) else default
        shown = "" if required else f" (default: {value})"
        help_ = HELP.get(f.name, f.name.replace("_", " ")) + shown
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_)
            continue
        listed = f.type.startswith("list")
        inner = f.type[5:-1] if listed else f.type.split(" |")[0]
        kind = TYPES.get(inner, str)
        p.add_argument(flag, type=kind, default=None if required else default, required=required,
                       nargs=("*" if f.name == "compare" else "+") if listed else None,
                       metavar=f.name.split("_")[-1].upper(), help=help_)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> None:
        from llara_retrieval.reproduce.pipeline import reproduce

        print(reproduce(ReproduceConfig(**vars(args))).read_text(encoding="utf-8"))

    return run_cli(PROG, body, interrupted="run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
