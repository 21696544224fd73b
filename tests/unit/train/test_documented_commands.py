"""Every `python -m llara_retrieval.train STAGE ...` command in the README and docs uses flags the stage knows.

Only argparse runs (flag names, value types, choices): a documented GPU or DeepSpeed command is checked on
this CPU without building its TrainingArguments. transformers 5 dropped ``--warmup_ratio``, for example: a
doc still passing it would send a reader into a one-line error.
"""
import re
import shlex
from importlib import import_module
from pathlib import Path

import pytest
from transformers import HfArgumentParser

from llara_retrieval.train.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parents[3]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
CALL = re.compile(r"-m llara_retrieval\.train (\w+)(.*)")


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """``(where, stage, args)`` for each train command in a fenced block of README.md and docs/*.md."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in FENCE.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                match = CALL.search(line.split(" #")[0])
                if match and match.group(1) in COMMANDS:
                    found.append((path.name, match.group(1), shlex.split(match.group(2))))
    return found


COMMANDS_IN_DOCS = documented_commands()


def test_the_docs_show_every_stage():
    assert {stage for _, stage, _ in COMMANDS_IN_DOCS} == set(COMMANDS)


@pytest.mark.parametrize("where, stage, args", COMMANDS_IN_DOCS,
                         ids=[f"{w}:{s}:{i}" for i, (w, s, _) in enumerate(COMMANDS_IN_DOCS)])
def test_documented_command_parses(where, stage, args):
    parser = HfArgumentParser(import_module(COMMANDS[stage][0]).ARGUMENT_TYPES)
    flags = [token.strip("[]") for token in args if token.lstrip("[").startswith("--")]
    unknown = [flag for flag in flags if flag not in parser._option_string_actions]
    assert unknown == [], f"{where}: `train {stage}` does not know {unknown}"
    if not any("[" in token or token in ("...", "…") for token in args):  # not a synopsis or excerpt: values too
        assert parser.parse_known_args(args)[1] == []
