"""``python -m llara_retrieval.train {prepare,pretrain,mine,finetune} ...``: dispatch to each stage's driver."""
from __future__ import annotations

import sys
from importlib import import_module

COMMANDS = {
    "prepare": ("llara_retrieval.train.pretrain.prepare", "turn running text into pretraining JSONL"),
    "pretrain": ("llara_retrieval.train.pretrain.train", "stage 1: EBAE + EBAR adaptation"),
    "mine": ("llara_retrieval.train.finetune.mine", "mine hard negatives for fine-tuning"),
    "finetune": ("llara_retrieval.train.finetune.train", "stage 2: contrastive fine-tuning"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m llara_retrieval.train COMMAND [options]\n\ncommands:\n" + "\n".join(lines),
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return import_module(COMMANDS[argv[0]][0]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
