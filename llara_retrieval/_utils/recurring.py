"""Recoverable problems that can recur on many lines of a file (a duplicate id, a null text): each kind is
reported once, as one :class:`LlaraWarning` at its first place with a count, in the same words by every
reader (the Pyserini corpus and topics, the BEIR corpus)."""
from __future__ import annotations

import warnings
from pathlib import Path

from llara_retrieval._utils.errors import LlaraWarning, at


class Recurring:
    """Counts one kind of problem and keeps its first place and message, for a single warning."""

    def __init__(self, counted: str):
        """Args:
            counted: what the count says, e.g. ``"duplicate(s)"`` or ``"such document(s)"``.
        """
        self.counted = counted
        self.first: tuple[str, str] | None = None
        self.count = 0

    def add(self, where: str, message: str) -> None:
        if self.first is None:
            self.first = (where, message)
        self.count += 1

    def warn(self, stacklevel: int = 3) -> None:
        """One ``where: message (N <counted> in all)`` warning, if anything was added."""
        if self.first is not None:
            where, message = self.first
            warnings.warn(f"{where}: {message} ({self.count} {self.counted} in all)", LlaraWarning,
                          stacklevel=stacklevel)


class DuplicateIds:
    """The first place of each id; a repeated id is to be skipped (the first record is kept) and warned about
    as ``file:line: duplicate doc id '4' (first at line 2); kept the first record (1 duplicate(s) in all)``."""

    def __init__(self, noun: str):
        """Args:
            noun: what the ids are, e.g. ``"doc id"`` or ``"topic id"``.
        """
        self.noun = noun
        self.places: dict[str, tuple[Path, int]] = {}
        self.repeats = Recurring("duplicate(s)")

    def remember(self, key: str, path: str | Path, lineno: int) -> None:
        """Note an id without judging it (a record another shard reads)."""
        self.places.setdefault(key, (Path(path), lineno))

    def is_new(self, key: str, path: str | Path, lineno: int) -> bool:
        """True for the first record with ``key``; a repeat is counted for :meth:`warn` and False."""
        if key not in self.places:
            self.places[key] = (Path(path), lineno)
            return True
        first_path, first_line = self.places[key]
        first = f"line {first_line}" if first_path == Path(path) else at(first_path, first_line)
        self.repeats.add(at(path, lineno), f"duplicate {self.noun} {key!r} (first at {first}); kept the first record")
        return False

    def warn(self, stacklevel: int = 3) -> None:
        self.repeats.warn(stacklevel + 1)


def null_text_message(doc_id: str, field: str, record: dict) -> str:
    """What every corpus reader says of a document whose text is null or absent (it is read as empty)."""
    what = f'"{field}": null' if field in record else f'no "{field}" field'
    return f"document {doc_id!r} has {what}, read as empty text"
