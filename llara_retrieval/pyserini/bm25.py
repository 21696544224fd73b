"""BM25 through Pyserini (Lucene) for any BEIR folder: the baseline of the BEIR runs and the
hard-negative miner of the trainer.

The index is the one Pyserini publishes as ``beir-v1.0.0-<name>.flat``: Anserini's
``BeirFlatCollection`` (title and text in one ``contents`` field), default English analyzer, searched
with k1=0.9, b=0.4. It is built once per corpus (keyed by the sha256 of ``corpus.jsonl``) into the
cache and reused after.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from llara_retrieval._utils.atomic import atomic_dir, atomic_write
from llara_retrieval._utils.cache_dir import cache_root, file_sha256
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.pyserini.java import configure_java
from llara_retrieval.retrieval.runs import Run

MARKER = "llara_bm25.json"
K1, B = 0.9, 0.4


def build_bm25_index(beir_dir: str | Path, index_dir: str | Path | None = None,
                     cache_dir: str | Path | None = None, threads: int = 2,
                     corpus: Mapping[str, Mapping[str, str]] | None = None) -> Path:
    """The Lucene index of ``beir_dir/corpus.jsonl``, built on first use and reused while the corpus
    is byte-identical. ``index_dir`` defaults to ``<cache>/bm25/<folder>-<sha256[:16]>``; ``corpus``
    is that file already read with ``read_corpus`` (saves reading and warning twice)."""
    from llara_retrieval.retrieval.data import read_corpus

    corpus_path = Path(beir_dir) / "corpus.jsonl"
    if not corpus_path.is_file():
        raise LlaraError(f"{corpus_path}: missing (a BEIR folder holds corpus.jsonl)")
    sha = file_sha256(corpus_path)
    default = cache_root(cache_dir) / "bm25" / f"{Path(beir_dir).resolve().name}-{sha[:16]}"
    target = Path(index_dir) if index_dir else default
    if _is_index_of(target, sha):
        return target
    if target.exists() and any(target.iterdir()):
        raise LlaraError(f"{target}: exists and is not a BM25 index of {corpus_path}; choose another index dir")
    if corpus is None:  # checked and de-duplicated, so Lucene sees exactly the documents we evaluate
        corpus = read_corpus(corpus_path)
    if target.exists():
        target.rmdir()  # empty (checked above)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.work.", dir=target.parent) as work, \
            atomic_dir(target) as index:  # another process that built the same index first wins
        _write_flat_collection(corpus, Path(work) / "collection" / "corpus.jsonl")
        shutil.rmtree(index)  # Lucene creates the index folder itself
        _index_collection(Path(work) / "collection", index, threads)
        marker = {"corpus": str(corpus_path.resolve()), "sha256": sha, "documents": len(corpus)}
        atomic_write(index / MARKER, json.dumps(marker, indent=2) + "\n")
    return target


def _is_index_of(index_dir: Path, sha: str) -> bool:
    marker = index_dir / MARKER
    try:
        return marker.is_file() and json.loads(marker.read_text()).get("sha256") == sha
    except (OSError, json.JSONDecodeError):
        return False


def _write_flat_collection(corpus: Mapping[str, Mapping[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True)
    with open(path, "w", encoding="utf-8") as out:
        for doc_id, doc in corpus.items():
            out.write(json.dumps({"_id": doc_id, "title": doc.get("title", ""), "text": doc.get("text", "")}) + "\n")


def _index_collection(collection: Path, index: Path, threads: int) -> None:
    configure_java()
    from pyserini.pyclass import autoclass

    args = ["-collection", "BeirFlatCollection", "-generator", "DefaultLuceneDocumentGenerator",
            "-input", str(collection), "-index", str(index), "-threads", str(max(1, threads)), "-storeRaw",
            "-quiet"]
    autoclass("io.anserini.index.IndexCollection").main(args)
    if not (index / "segments_1").exists() and not any(index.glob("segments_*")):
        raise LlaraError(f"{collection}: Lucene indexing produced no index")


def bm25_search(index_dir: str | Path, queries: Mapping[str, str], k: int = 1000, k1: float = K1, b: float = B,
                threads: int = 2, show_progress_bar: bool = True, batch: int = 256) -> Run:
    """``{qid: {docid: score}}``: the top ``k`` BM25 hits of each query (empty for an empty query)."""
    from tqdm.auto import tqdm

    if not (Path(index_dir) / MARKER).is_file() and not any(Path(index_dir).glob("segments_*")):
        raise LlaraError(f"{index_dir}: not a Lucene index")
    configure_java()
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(index_dir))
    searcher.set_bm25(k1, b)
    qids = list(queries)
    run: Run = {}
    with tqdm(total=len(qids), desc="bm25 search", unit="query", disable=not show_progress_bar) as bar:
        for start in range(0, len(qids), batch):
            part = qids[start:start + batch]
            hits = searcher.batch_search([queries[q] for q in part], part, k=k, threads=max(1, threads))
            for qid in part:
                run[qid] = {hit.docid: float(hit.score) for hit in hits.get(qid, [])}
            bar.update(len(part))
    searcher.close()
    return run
