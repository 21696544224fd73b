"""TREC run files and qrels: the one reader and writer of each, and the one ranking order (score, then doc id).

Shared by the Pyserini, BEIR, training and reproduction paths, so every run file ranks ties alike.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval._utils.text import read_lines

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


def ranked(scores: Mapping[str, float], depth: int | None = None) -> list[str]:
    """Doc ids by descending score, ties broken by doc id (the order of ``format_run``)."""
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))][:depth]


def read_qrels(path: str | Path) -> Qrels:
    """Qrels in BEIR TSV (``query-id corpus-id score`` with header) or TREC (``qid 0 docid rel``) format.

    Grades are integers (``1.0`` is read as 1); anything else, ``2.7``, ``inf`` or ``nan``, is a ``file:line`` error.
    """
    qrels: Qrels = {}
    for lineno, line in read_lines(path):
        parts = line.split()
        if not parts or (lineno == 1 and parts[0] == "query-id"):
            continue
        if len(parts) == 3:
            qid, docid, rel = parts
        elif len(parts) == 4:
            qid, _, docid, rel = parts
        else:
            raise LlaraError(f"{path}:{lineno}: expected 3 (BEIR) or 4 (TREC) columns, got {len(parts)}")
        qrels.setdefault(qid, {})[docid] = _grade(rel, path, lineno)
    if not qrels:
        raise LlaraError(f"{path}: no judgements")
    return qrels


def _grade(text: str, path: str | Path, lineno: int) -> int:
    try:
        value = float(text)
    except ValueError:
        raise LlaraError(f"{path}:{lineno}: relevance {text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise LlaraError(f"{path}:{lineno}: relevance {text!r} is not an integer grade")
    return int(value)


def read_run(path: str | Path) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``)."""
    run: Run = {}
    for lineno, line in read_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise LlaraError(f"{path}:{lineno}: a TREC run line has 6 columns, got {len(parts)}")
        try:
            run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
        except ValueError:
            raise LlaraError(f"{path}:{lineno}: score {parts[4]!r} is not a number") from None
    return run


def format_run(run: Mapping[str, Mapping[str, float]], tag: str, top_k: int | None = None) -> str:
    """TREC run text: per query, documents by descending score (ties by doc id), ranks from 1."""
    lines = []
    for qid in sorted(run):
        scores = run[qid]
        lines.extend(f"{qid} Q0 {docid} {rank} {scores[docid]:.6f} {tag}"
                     for rank, docid in enumerate(ranked(scores, top_k), 1))
    return "\n".join(lines) + ("\n" if lines else "")


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str, top_k: int | None = None) -> Path:
    return atomic_write(path, format_run(run, tag, top_k))




def encoder_name(name_or_path: str | Path | None) -> str:
    """A short, file-name-safe name for run files and caches: the spec file's stem, the encoder dir's
    name, or the hub id (owner kept: ``BAAI/LLARA-beir`` -> ``BAAI-LLARA-beir``)."""
    if name_or_path is None or str(name_or_path) in ("", "default"):
        return "default"
    path = Path(str(name_or_path)).expanduser()
    if path.suffix in (".json", ".gguf"):
        label = path.stem
    else:
        label = path.resolve().name if path.is_dir() else str(name_or_path).rstrip("/")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "encoder"
