"""The one way user text files are read: UTF-8 line by line, or a one-line ``file:line`` error.

Every reader of user data (corpus, topics, qrels, runs, training and pretraining files) goes through
:func:`read_lines` or :func:`read_text`, so a stray Latin-1 byte is reported as
``corpus.jsonl:3: not UTF-8 text (byte 0xe9 at column 17) …`` instead of a ``UnicodeDecodeError`` with a
byte offset and no file. A UTF-8 byte-order mark at the start of a file is dropped.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

from llara_retrieval._utils.errors import LlaraError, at

BOM = "\ufeff"


def _not_utf8(path: str | Path, lineno: int, line: bytes, start: int) -> LlaraError:
    """The error for the undecodable byte at offset ``start`` of ``line`` (its column counted in characters)."""
    column = len(line[:start].decode("utf-8", errors="replace")) + 1
    return LlaraError(f"{at(path, lineno)}: not UTF-8 text (byte 0x{line[start]:02x} at column {column}); "
                      "save the file as UTF-8")


def _cannot_read(path: str | Path, exc: BaseException) -> LlaraError:
    return LlaraError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for every line of a UTF-8 text file, line end removed (``.gz`` is decompressed).

    Raises:
        LlaraError: the file cannot be opened, or a line is not UTF-8 (naming the file, line and byte).
    """
    path = Path(path)
    try:
        handle = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    with handle:
        lineno = 0
        while True:
            try:
                raw = handle.readline()
            except (OSError, EOFError) as exc:  # a damaged .gz
                raise _cannot_read(path, exc) from None
            if not raw:
                return
            lineno += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, lineno, raw, exc.start) from None
            yield lineno, (line.removeprefix(BOM) if lineno == 1 else line).rstrip("\r\n")


def read_text(path: str | Path) -> str:
    """A whole UTF-8 text file; a bad byte is a one-line error naming its line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    try:
        return data.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        raise _not_utf8(path, data.count(b"\n", 0, exc.start) + 1, data[start:], exc.start - start) from None
