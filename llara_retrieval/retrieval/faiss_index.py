"""Pyserini-layout dense indexes: write them atomically, merge shards, load and search them.

An index dir holds ``index`` (a Faiss inner-product index) and ``docid`` (one id a line), exactly what
``pyserini.search.faiss.FaissSearcher`` reads; ``embeddings.jsonl`` (``id``, ``contents``, ``vector``)
is Pyserini's other encode output. ``llara_index.json`` records the encoder and dimension. Outputs are
built in a hidden ``.<name>.partial-*`` dir (one a killed run left is removed by the next) and moved into place at the end, ``index`` last, so an
interrupted run never leaves a file that looks finished. Faiss runs on GPU when faiss-gpu and CUDA
are present (flat indexes), on CPU otherwise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from llara_retrieval._utils.atomic import temp_dir_beside
from llara_retrieval._utils.errors import LlaraError, at
from llara_retrieval._utils.text import read_lines

INDEX_FILE = "index"
DOCID_FILE = "docid"
JSONL_FILE = "embeddings.jsonl"
META_FILE = "llara_index.json"
OUTPUT_FILES = (JSONL_FILE, DOCID_FILE, META_FILE, INDEX_FILE)  # the order they are moved into place


class OutputDir:
    """A hidden temp dir beside ``path`` whose files replace those in ``path`` only on success.

    Checks ``path`` when made (before any work), builds in :func:`temp_dir_beside` (which also removes the
    temps of killed earlier runs) and moves the files in on a clean exit, ``index`` last.
    """

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path).expanduser()
        existing = [n for n in OUTPUT_FILES if (self.path / n).exists()]
        if self.path.exists() and not self.path.is_dir():
            raise LlaraError(f"{self.path}: exists and is not a folder")
        if existing and not overwrite:
            raise LlaraError(f"{self.path}: already holds {', '.join(existing)} (pass --overwrite to replace)")
        self._temp = None
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self._temp = temp_dir_beside(self.path)
        self.tmp = self._temp.__enter__()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.path.mkdir(parents=True, exist_ok=True)
                for name in OUTPUT_FILES:
                    if (self.path / name).exists():
                        (self.path / name).unlink()
                for name in OUTPUT_FILES:
                    if (self.tmp / name).exists():
                        (self.tmp / name).replace(self.path / name)
        finally:
            self._temp.__exit__(None, None, None)


class VectorWriter:
    """Streams ``(ids, contents, vectors)`` batches into Pyserini's JSONL and/or Faiss flat layout."""

    def __init__(self, folder: Path, to_faiss: bool, to_jsonl: bool):
        self.folder = folder
        self.index = None
        self.count = 0
        self.jsonl = open(folder / JSONL_FILE, "w", encoding="utf-8") if to_jsonl else None
        self.docids = open(folder / DOCID_FILE, "w", encoding="utf-8") if to_faiss else None
        self.to_faiss = to_faiss

    def add(self, ids: Sequence[str], contents: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.jsonl:
            for doc_id, text, vec in zip(ids, contents, vectors):
                self.jsonl.write(json.dumps({"id": doc_id, "contents": text, "vector": vec.tolist()}) + "\n")
        if self.to_faiss:
            import faiss

            if self.index is None:
                self.index = faiss.IndexFlatIP(vectors.shape[1])
            self.docids.writelines(f"{doc_id}\n" for doc_id in ids)
            self.index.add(vectors)
        self.count += len(ids)

    def close(self) -> None:
        for handle in (self.jsonl, self.docids):
            if handle:
                handle.close()
        if self.index is not None:
            import faiss

            faiss.write_index(self.index, str(self.folder / INDEX_FILE))


def write_meta(folder: Path, meta: dict) -> None:
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_docids(path: Path) -> list[str]:
    return [line for _, line in read_lines(path)]


def read_vectors(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """Ids and float32 vectors of an encode output (Faiss ``index`` + ``docid``, else ``embeddings.jsonl``)."""
    folder = Path(folder)
    if (folder / INDEX_FILE).is_file():
        index, ids = read_index(folder)
        return ids, index.reconstruct_n(0, index.ntotal)
    if (folder / JSONL_FILE).is_file():
        ids, rows = [], []
        for lineno, line in read_lines(folder / JSONL_FILE):
            try:
                record = json.loads(line)
                ids.append(str(record["id"]))
                rows.append(record["vector"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise LlaraError(f"{at(folder / JSONL_FILE, lineno)}: not an embeddings record "
                                 "{\"id\", \"vector\"}") from None
        if not rows:
            raise LlaraError(f"{folder / JSONL_FILE}: no vectors")
        try:
            return ids, np.asarray(rows, dtype=np.float32)
        except ValueError:
            raise LlaraError(f"{folder / JSONL_FILE}: vectors of different lengths") from None
    raise LlaraError(f"{folder}: no encode output here (expected {INDEX_FILE} + {DOCID_FILE} or {JSONL_FILE})")


def read_index(folder: str | Path):
    """The CPU Faiss index and doc ids of an index dir, checked against each other."""
    import faiss

    folder = Path(folder).expanduser()
    for name in (INDEX_FILE, DOCID_FILE):
        if not (folder / name).is_file():
            raise LlaraError(f"{folder}: not a Faiss index dir (no '{name}' file)")
    try:
        index = faiss.read_index(str(folder / INDEX_FILE))
    except RuntimeError as exc:
        raise LlaraError(f"{folder / INDEX_FILE}: not a Faiss index ({str(exc).strip().splitlines()[-1]})") from None
    ids = read_docids(folder / DOCID_FILE)
    if len(ids) != index.ntotal:
        raise LlaraError(f"{folder}: {index.ntotal} vectors but {len(ids)} doc ids in '{DOCID_FILE}'")
    return index, ids


def build_index(vectors: np.ndarray, hnsw: bool = False, hnsw_m: int = 32, ef_construction: int = 200):
    """Inner-product index over ``vectors``: exact (flat), or approximate HNSW."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if hnsw:
        index = faiss.IndexHNSWFlat(vectors.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
    else:
        index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def merge_shards(shards: Sequence[str | Path], output: str | Path, hnsw: bool = False, hnsw_m: int = 32,
                 ef_construction: int = 200, overwrite: bool = False) -> Path:
    """One Faiss index dir from shard outputs (Faiss or JSONL), in the order given."""
    import faiss

    if not shards:
        raise LlaraError("no shard dirs to merge")
    all_ids: list[str] = []
    parts = []
    for shard in shards:
        ids, vectors = read_vectors(shard)
        if parts and vectors.shape[1] != parts[0].shape[1]:
            raise LlaraError(f"{shard}: {vectors.shape[1]}-dimensional vectors, but {shards[0]} has "
                             f"{parts[0].shape[1]}")
        all_ids += ids
        parts.append(vectors)
    if len(set(all_ids)) != len(all_ids):
        raise LlaraError(f"merged shards repeat doc ids ({len(all_ids) - len(set(all_ids))} duplicates): "
                         "was a shard given twice?")
    index = build_index(np.concatenate(parts), hnsw, hnsw_m, ef_construction)
    meta = {**read_meta(shards[0]), "count": len(all_ids), "dim": int(parts[0].shape[1]),
            "index_type": "hnsw" if hnsw else "flat", "merged_from": [str(Path(s).resolve()) for s in shards]}
    for key in ("shard_id", "shard_num"):
        meta.pop(key, None)
    with OutputDir(output, overwrite) as tmp:
        (tmp / DOCID_FILE).write_text("".join(f"{i}\n" for i in all_ids), encoding="utf-8")
        write_meta(tmp, meta)
        faiss.write_index(index, str(tmp / INDEX_FILE))
    return Path(output)


def gpu_available() -> bool:
    """True when this Faiss build has GPU support and sees a GPU."""
    try:
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:
        return False


def to_device(index, device: str = "auto"):
    """``index`` on the GPU for ``device`` "cuda[:N]" (or "auto" with a GPU), else unchanged."""
    import faiss

    if device == "cpu" or (device == "auto" and not gpu_available()):
        return index
    if not gpu_available():
        raise LlaraError(f"--faiss-device {device}: this Faiss has no GPU support or sees no GPU "
                         "(pip install faiss-gpu-cu12)")
    if not isinstance(index, faiss.IndexFlat):
        return index  # HNSW and friends have no GPU version
    gpu = int(device.split(":", 1)[1]) if ":" in device else 0
    to_device.resources = getattr(to_device, "resources", None) or faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(to_device.resources, gpu, index)


def search_index(index, queries: np.ndarray, k: int, threads: int | None = None,
                 ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner-product scores and row numbers for each query vector."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    if ef_search is not None and hasattr(index, "hnsw"):
        index.hnsw.efSearch = ef_search
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))


def flat_search(query_vectors: np.ndarray, query_ids: Sequence[str], doc_vectors: np.ndarray,
                doc_ids: Sequence[str], k: int, batch: int = 1024) -> dict[str, dict[str, float]]:
    """Exact top-``k`` by inner product (Faiss ``IndexFlatIP``), as ``{qid: {docid: score}}``."""
    import faiss

    index = faiss.IndexFlatIP(doc_vectors.shape[1])
    index.add(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    run = {}
    for start in range(0, len(query_ids), batch):
        scores, rows = search_index(index, query_vectors[start:start + batch], k)
        for qid, row_s, row_i in zip(query_ids[start:start + batch], scores, rows):
            run[qid] = {doc_ids[i]: float(s) for s, i in zip(row_s, row_i) if i >= 0}
    return run
