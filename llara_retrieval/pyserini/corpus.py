"""Read a JSON-lines corpus the way ``pyserini.encode`` does, but strictly: every bad line is a one-line
``file:line`` error, before any encoding starts.

Records are ``{"id"|"_id"|"docid": …, <fields>…}`` or Pyserini's ``{"id", "contents"}`` with fields
joined by a delimiter. Shards split the documents exactly as Pyserini does (equal slices, the last
shard takes the remainder), so shard outputs concatenated in order equal the unsharded output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from llara_retrieval._utils.errors import LlaraError, at
from llara_retrieval._utils.jsonl import read_jsonl
from llara_retrieval._utils.recurring import DuplicateIds, Recurring, null_text_message
from llara_retrieval._utils.text import read_lines

ID_FIELDS = ("id", "_id", "docid")


@dataclass
class CorpusShard:
    ids: list[str] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def corpus_files(path: str | Path) -> list[Path]:
    """The corpus file, or the files of a corpus folder in name order."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if files:
            return files
        raise LlaraError(f"{path}: empty corpus folder")
    raise LlaraError(f"{path}: no such corpus file or folder")


def _records(files: Sequence[Path]) -> Iterator[tuple[Path, int, dict]]:
    for file in files:
        for lineno, record in read_jsonl(file):
            yield file, lineno, record


def count_documents(files: Sequence[Path]) -> int:
    """Non-blank lines (read_jsonl's records), counted without parsing them."""
    return sum(1 for file in files for _, line in read_lines(file) if line.strip())


def shard_bounds(total: int, shard_id: int, shard_num: int) -> tuple[int, int]:
    """``[start, end)`` of one shard, as ``pyserini.encode`` computes it."""
    if shard_num < 1 or not 0 <= shard_id < shard_num:
        raise LlaraError(f"--shard-id {shard_id} --shard-num {shard_num}: need 0 <= shard-id < shard-num")
    size = total // shard_num
    start = shard_id * size
    return start, (total if shard_id == shard_num - 1 else start + size)


def document_id(record: dict, docid_field: str | None = None) -> str | None:
    """The id of a corpus record (``docid_field``, else the first of ``id``, ``_id``, ``docid``), or None."""
    keys = (docid_field,) if docid_field else ID_FIELDS
    doc_id = next((record[k] for k in keys if record.get(k) is not None), None)
    return None if doc_id is None or isinstance(doc_id, (dict, list)) else str(doc_id)


def parse_document(record: dict, file: Path, lineno: int, fields: Sequence[str], docid_field: str | None = None,
                   delimiter: str = "\n", nulls: Recurring | None = None) -> tuple[str, list[str]]:
    """``(doc id, field values)`` of one corpus record; anything unusable is a ``file:line`` error.

    A null field reads as empty text; ``nulls`` collects those (the title excepted) for one warning.
    """
    where = at(file, lineno)
    doc_id = document_id(record, docid_field)
    if doc_id is None:
        keys = (docid_field,) if docid_field else ID_FIELDS
        raise LlaraError(f"{where}: no document id (field {' or '.join(repr(k) for k in keys)})")
    if all(f in record for f in fields):
        values = [record[f] if record[f] is not None else "" for f in fields]
        null = next((f for f in fields if record[f] is None and f != "title"), None)
        if null and nulls is not None:
            nulls.add(where, null_text_message(doc_id, null, record))
    elif isinstance(record.get("contents"), str):
        values = _split_contents(record["contents"], len(fields), delimiter, where)
    else:
        missing = next(f for f in fields if f not in record)
        raise LlaraError(f"{where}: document {doc_id!r} has no field {missing!r} (nor a 'contents' field)")
    for name, value in zip(fields, values):
        if not isinstance(value, str):
            raise LlaraError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return doc_id, values


def _split_contents(contents: str, n_fields: int, delimiter: str, where: str) -> list[str]:
    if contents.count(delimiter) == n_fields and contents.endswith(delimiter):
        contents = contents[:-len(delimiter)]
    parts = contents.split(delimiter) if n_fields > 1 else [contents]
    if len(parts) != n_fields:
        raise LlaraError(f"{where}: 'contents' splits into {len(parts)} fields with delimiter {delimiter!r}, "
                         f"expected {n_fields}")
    return parts


def read_shard(corpus: str | Path, fields: Sequence[str] = ("text",), docid_field: str | None = None,
               delimiter: str = "\n", shard_id: int = 0, shard_num: int = 1) -> CorpusShard:
    """All documents of one shard, checked; an empty corpus is an error.

    A repeated doc id keeps the corpus's first record (with one warning, as the BEIR reader does), also
    across shards: the merged shards hold exactly the documents of an unsharded encode.
    """
    files = corpus_files(corpus)
    total = count_documents(files)
    if total == 0:
        raise LlaraError(f"{at(files[0]) if len(files) == 1 else corpus}: empty corpus (no documents)")
    start, end = shard_bounds(total, shard_id, shard_num)
    shard = CorpusShard(fields={f: [] for f in fields})
    seen = DuplicateIds("doc id")
    nulls = Recurring("such document(s)")
    for index, (file, lineno, record) in enumerate(_records(files)):
        if index >= end:
            break
        if index < start:  # an earlier shard's record: only its id matters here
            doc_id = document_id(record, docid_field)
            if doc_id is not None:
                seen.remember(doc_id, file, lineno)
            continue
        doc_id, values = parse_document(record, file, lineno, fields, docid_field, delimiter, nulls)
        if seen.is_new(doc_id, file, lineno):
            shard.ids.append(doc_id)
            for name, value in zip(fields, values):
                shard.fields[name].append(value)
    seen.warn()
    nulls.warn()
    return shard
