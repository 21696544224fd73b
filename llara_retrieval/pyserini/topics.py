"""Topics (queries) and qrels by Pyserini name or by file, offline when the files are at hand.

Pyserini's Java side downloads a named topic or qrels file into ``<user.home>/.cache/pyserini/
topics-and-qrels`` unless it is already there. :func:`install_topics_dir` copies the files of a local
folder (``$LLARA_TOPICS_DIR``) there first, so ``--topics beir-v1.0.0-scifact-test`` works offline.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_copy
from llara_retrieval._utils.errors import LlaraError, at, first_line
from llara_retrieval._utils.jsonl import read_jsonl
from llara_retrieval._utils.recurring import DuplicateIds
from llara_retrieval._utils.text import read_lines

TOPICS_ENV = "LLARA_TOPICS_DIR"
Topics = dict[str, str]


def pyserini_topics_cache() -> Path:
    """The folder Anserini reads named topics/qrels from (Java's ``user.home``, not ``$HOME``)."""
    try:
        import pwd

        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError):
        home = Path.home()
    return home / ".cache" / "pyserini" / "topics-and-qrels"


def install_topics_dir(folder: str | Path, cache: Path | None = None) -> list[Path]:
    """Copy the topic/qrels files of ``folder`` that Pyserini's cache lacks; existing files are kept."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LlaraError(f"{folder}: topics folder not found")
    cache = cache or pyserini_topics_cache()
    copied = []
    for src in sorted(folder.iterdir()):
        dest = cache / src.name
        if src.is_file() and src.name.startswith(("topics.", "qrels.")) and not dest.exists():
            cache.mkdir(parents=True, exist_ok=True)
            atomic_copy(src, dest)
            copied.append(dest)
    return copied


def _prepare_named() -> None:
    from llara_retrieval.pyserini.java import configure_java

    configure_java()
    if os.environ.get(TOPICS_ENV):
        install_topics_dir(os.environ[TOPICS_ENV])


def read_topics(name_or_path: str | Path) -> Topics:
    """``{qid: query text}`` from a file (``qid<TAB>query`` TSV[.gz], BEIR/Pyserini JSONL) or a Pyserini name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return read_topics_file(path)
    if path.exists() or any(sep in str(name_or_path) for sep in ("/", os.sep)):
        raise LlaraError(f"{name_or_path}: no such topics file")
    _prepare_named()
    from pyserini.search import get_topics

    try:
        topics = get_topics(str(name_or_path))
    except ValueError:
        raise LlaraError(f"{name_or_path}: neither a topics file nor a Pyserini topics name") from None
    except Exception as exc:  # jnius.JavaException: typically the download failed (offline)
        raise LlaraError(f"{name_or_path}: Pyserini could not load these topics ({first_line(exc)}); offline, "
                         f"set ${TOPICS_ENV} to a folder holding its topics file") from None
    return {str(qid): str(fields.get("title") or fields.get("text") or "") for qid, fields in topics.items()}


def read_topics_file(path: Path) -> Topics:
    """Topics of a ``qid<TAB>query`` TSV (``.gz`` too) or JSONL file; a repeated id keeps its first query,
    with one warning that names both lines."""
    if path.name.endswith(".jsonl"):
        rows = ((lineno, _jsonl_topic(record, path, lineno)) for lineno, record in read_jsonl(path))
    else:
        rows = ((lineno, _tsv_topic(line, path, lineno)) for lineno, line in read_lines(path) if line.strip())
    topics: Topics = {}
    seen = DuplicateIds("topic id")
    for lineno, (qid, text) in rows:
        if seen.is_new(qid, path, lineno):
            topics[qid] = text
    seen.warn()
    if not topics:
        raise LlaraError(f"{path}: no topics")
    return topics


def _tsv_topic(line: str, path: Path, lineno: int) -> tuple[str, str]:
    parts = line.rstrip("\n\r").split("\t", 1)
    if len(parts) != 2:
        raise LlaraError(f"{at(path, lineno)}: expected 'qid<TAB>query'")
    return parts[0].strip(), parts[1].strip()


def _jsonl_topic(record: dict, path: Path, lineno: int) -> tuple[str, str]:
    qid = next((record[k] for k in ("_id", "qid", "id", "query_id") if k in record), None)
    text = next((record[k] for k in ("text", "query", "title", "contents") if k in record), None)
    if qid is None or not isinstance(text, str):
        raise LlaraError(f"{at(path, lineno)}: a topic needs an id ('_id', 'qid' or 'id') and a 'text' or 'query'")
    return str(qid), text


def qrels_file(name_or_path: str | Path) -> Path:
    """A qrels path as given, else the file Pyserini has (or downloads) for that name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if any(sep in str(name_or_path) for sep in ("/", os.sep)):
        raise LlaraError(f"{name_or_path}: no such qrels file")
    _prepare_named()
    from pyserini.search import get_qrels_file

    try:
        return Path(get_qrels_file(str(name_or_path)))
    except Exception as exc:
        raise LlaraError(f"{name_or_path}: Pyserini has no qrels for this name here ({first_line(exc)}); offline, "
                         f"set ${TOPICS_ENV} or pass a qrels file") from None


def topics_label(name_or_path: str | Path) -> str:
    """A short name for run files: the Pyserini name, else the file name (with its folder for queries.jsonl)."""
    path = Path(str(name_or_path)).expanduser()
    label = str(name_or_path)
    if path.is_file():
        label = re.sub(r"\.(tsv|txt|jsonl)$", "", path.name.removesuffix(".gz")).removeprefix("topics.")
        if label in ("queries", "topics"):
            label = f"{path.resolve().parent.name}-{label}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.") or "topics"
