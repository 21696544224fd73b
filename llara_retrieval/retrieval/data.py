"""BEIR-layout folders: find or download one, read and check it, and say precisely what is wrong.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv``. Errors name the file and line; recoverable problems (duplicate doc
ids, null texts, judgements for unknown queries or documents) are one-line :class:`LlaraWarning` s.
"""
from __future__ import annotations

import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llara_retrieval._utils.atomic import temp_dir_beside
from llara_retrieval._utils.cache_dir import cache_root, file_sha256
from llara_retrieval._utils.errors import LlaraError, LlaraWarning, at
from llara_retrieval._utils.jsonl import read_jsonl
from llara_retrieval._utils.recurring import DuplicateIds, Recurring, null_text_message
from llara_retrieval._utils.text import read_lines
from llara_retrieval.retrieval.runs import Qrels, read_qrels

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
BEIR_NAMES = ("trec-covid", "nfcorpus", "nq", "hotpotqa", "fiqa", "arguana", "webis-touche2020", "quora",
              "dbpedia-entity", "scidocs", "fever", "climate-fever", "scifact", "msmarco")  # single-folder ones
LAYOUT = "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv"


@dataclass
class BeirDataset:
    """One split of a BEIR folder, checked: only the judged queries of the split are kept."""

    name: str
    root: Path
    split: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: Qrels
    corpus_sha256: str

    @property
    def corpus_file(self) -> Path:
        return self.root / "corpus.jsonl"

    @property
    def qrels_file(self) -> Path:
        return qrels_file(self.root, self.split)


def qrels_file(root: Path, split: str) -> Path:
    """Where a BEIR folder keeps a split's judgements."""
    return root / "qrels" / f"{split}.tsv"


def _field(record: dict, key: str, path: Path, lineno: int, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise LlaraError(f"{at(path, lineno)}: field '{key}' must be a string, got {got}")
    return value


def read_corpus(path: str | Path) -> dict[str, dict[str, str]]:
    """``{doc_id: {"title", "text"}}``; a duplicate id keeps its first record and a null or missing text reads
    as empty, each with one warning."""
    path = Path(path)
    corpus: dict[str, dict[str, str]] = {}
    seen = DuplicateIds("doc id")
    empty = Recurring("such document(s)")
    for lineno, record in read_jsonl(path):
        doc_id = _field(record, "_id", path, lineno)
        if not seen.is_new(doc_id, path, lineno):
            continue
        if record.get("text") is None:
            empty.add(at(path, lineno), null_text_message(doc_id, "text", record))
        corpus[doc_id] = {"title": _field(record, "title", path, lineno, required=False),
                          "text": _field(record, "text", path, lineno, required=False)}
    seen.warn()
    empty.warn()
    if not corpus:
        raise LlaraError(f"{path}: no documents")
    return corpus


def read_queries(path: str | Path) -> dict[str, str]:
    """``{query_id: text}``; a duplicate query id is an error (which text would be meant?)."""
    path = Path(path)
    queries: dict[str, str] = {}
    for lineno, record in read_jsonl(path):
        qid = _field(record, "_id", path, lineno)
        if qid in queries:
            raise LlaraError(f"{at(path, lineno)}: duplicate query id {qid!r}")
        queries[qid] = _field(record, "text", path, lineno)
    return queries


def _first_line(path: Path, values: set[str], doc: bool) -> int | None:
    """Line of the first qrels row whose query (or doc) id is in ``values``, to point at a problem."""
    for lineno, line in read_lines(path):
        parts = line.split()  # BEIR: qid docid rel; TREC: qid 0 docid rel
        if len(parts) in (3, 4) and parts[-2 if doc else 0] in values:
            return lineno
    return None


def _check_qrels(qrels: Qrels, queries: dict[str, str], corpus: dict, path: Path, queries_path: Path) -> Qrels:
    unknown_q = set(qrels) - set(queries)
    if unknown_q == set(qrels):
        raise LlaraError(f"{path}: none of its {len(qrels)} queries is in {queries_path}")
    if unknown_q:
        warnings.warn(f"{at(path, _first_line(path, unknown_q, doc=False))}: query {sorted(unknown_q)[0]!r} is not in "
                      f"{queries_path.name}; skipped {len(unknown_q)} such judged quer(y/ies)",
                      LlaraWarning, stacklevel=3)
    unknown_d = {d for docs in qrels.values() for d in docs} - set(corpus)
    if unknown_d:
        warnings.warn(f"{at(path, _first_line(path, unknown_d, doc=True))}: doc {sorted(unknown_d)[0]!r} is not in "
                      f"corpus.jsonl ({len(unknown_d)} such judged doc(s); they count as not retrieved)",
                      LlaraWarning, stacklevel=3)
    return {q: docs for q, docs in qrels.items() if q in queries}


def load_dataset(name_or_path: str | Path, split: str = "test", cache_dir: str | Path | None = None) -> BeirDataset:
    """Read and check one split of a BEIR folder (or a BEIR dataset name, downloaded once)."""
    root = resolve_dataset(name_or_path, cache_dir)
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_path = qrels_file(root, split)
    for path in (corpus_path, queries_path):
        if not path.is_file():
            raise LlaraError(f"{path}: missing ({LAYOUT})")
    if not qrels_path.is_file():
        found = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise LlaraError(f"{qrels_path}: missing (split {split!r}; splits found: {', '.join(found) or 'none'})")
    corpus = read_corpus(corpus_path)
    queries = read_queries(queries_path)
    qrels = _check_qrels(read_qrels(qrels_path), queries, corpus, qrels_path, queries_path)
    return BeirDataset(name=root.name, root=root, split=split, corpus=corpus,
                       queries={q: queries[q] for q in queries if q in qrels}, qrels=qrels,
                       corpus_sha256=file_sha256(corpus_path))


def resolve_dataset(name_or_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A BEIR folder: an existing path, else a BEIR dataset name fetched into the cache."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    name = str(name_or_path)
    if path.exists() or "/" in name or "\\" in name or name.startswith("."):
        raise LlaraError(f"{name}: no such folder ({LAYOUT})")
    if name not in BEIR_NAMES:
        raise LlaraError(f"{name}: not a folder and not a BEIR dataset name (known: {', '.join(BEIR_NAMES)})")
    target = cache_root(cache_dir) / "beir" / name
    if not (target / "corpus.jsonl").is_file():
        download_dataset(name, target)
    return target


def download_dataset(name: str, target: Path, timeout: float = 30.0) -> Path:
    """Download and unzip a BEIR dataset beside ``target`` and rename it into place."""
    url = BEIR_URL.format(name=name)
    with temp_dir_beside(target) as tmp:
        archive = tmp / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
                _copy_with_progress(response, out, int(response.headers.get("Content-Length") or 0), name)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LlaraError(f"cannot download BEIR dataset {name!r} from {url} ({reason}); without a network, "
                             f"pass the path of a BEIR folder instead, e.g. --dataset path/to/{name}") from None
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(tmp / "unzipped")
        inner = next((p.parent for p in (tmp / "unzipped").rglob("corpus.jsonl")), None)
        if inner is None:
            raise LlaraError(f"{url}: the archive holds no corpus.jsonl")
        inner.rename(target)
    return target


def _copy_with_progress(response, out, total: int, name: str) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total or None, unit="B", unit_scale=True, desc=f"download {name}") as bar:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            out.write(chunk)
            bar.update(len(chunk))
