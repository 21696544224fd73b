"""JSON-lines input with one-line ``file:line`` errors, for every reader of user data."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from llara_retrieval._utils.errors import LlaraError, at
from llara_retrieval._utils.text import read_lines


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` for each non-blank line; a bad line is a one-line ``file:line`` error."""
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LlaraError(f"{at(path, lineno)}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise LlaraError(f"{at(path, lineno)}: expected a JSON object")
        yield lineno, record
