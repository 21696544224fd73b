"""Corpus embeddings cached on disk, in chunks, so encoding a corpus is paid once and an interrupted
run resumes at the first missing chunk.

The folder is ``<cache>/embeddings/<encoder>-<encoder key>/<dataset>-<corpus sha256>``: the encoder key
hashes the spec (prompts, pooling), the passage length, the dtype and the weight files' names, sizes
and modification times, so a retrained model at the same path gets a new entry. Changing queries,
``top_k`` or metrics reuses the vectors.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from llara_retrieval._utils.atomic import atomic_file, atomic_write
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.default_model import default_model_dir
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.core.precision import dtype_name

FORMAT = "llara-corpus-embeddings/1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def _weights_fingerprint(location: str | None) -> list:
    if not location:
        return []
    path = default_model_dir() if location == "default" else Path(location)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    else:
        return [location]  # a hub id: its name is all we know offline
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def encoder_key(encoder: LlaraEncoder, passage_max_length: int | None = None) -> str:
    """Hex digest that changes whenever the passage vectors could change."""
    spec = encoder.spec
    payload = {"spec": spec.to_dict(), "passage_max_length": passage_max_length or spec.passage_max_length,
               "dtype": dtype_name(encoder.dtype), "base": _weights_fingerprint(spec.base_model),
               "adapter": _weights_fingerprint(spec.adapter)}
    payload["spec"].pop("description", None)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def encoding_order(corpus: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Doc ids longest first (ties by id): batches of similar length pad little; deterministic."""
    return sorted(corpus, key=lambda d: (-len(corpus[d].get("title", "")) - len(corpus[d].get("text", "")), d))


EncodePassages = Callable[[Sequence[Mapping[str, str]]], np.ndarray]


def cached_corpus_embeddings(encode_passages: EncodePassages, corpus: Mapping[str, Mapping[str, str]],
                             folder: str | Path,
                             batch_size: int = 32, chunk_size: int = 256,
                             show_progress_bar: bool = True) -> tuple[list[str], np.ndarray]:
    """``(doc_ids, vectors)`` for the whole corpus; encodes only the chunks not yet on disk.

    ``encode_passages`` maps a batch of ``{"title", "text"}`` records to float32 vectors (e.g.
    ``LlaraEncoder.encode_passages`` or a BEIR model's ``encode_corpus``).

    Once a chunk exists, the entry keeps its chunk size (``chunk_size`` is then ignored). Small chunks
    lose little work to an interruption on a CPU; on a GPU a few seconds each is still cheap.
    """
    if chunk_size < 1 or batch_size < 1:
        raise LlaraError(f"chunk_size and batch_size must be at least 1, not {chunk_size} and {batch_size}")
    folder = Path(folder)
    doc_ids = encoding_order(corpus)
    ids_sha = hashlib.sha256("\n".join(doc_ids).encode()).hexdigest()
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    stale = meta and (meta.get("format") != FORMAT or meta.get("ids_sha256") != ids_sha)
    if stale or (meta and meta["chunk_size"] != chunk_size and not any(folder.glob("chunk-*.npy"))):
        shutil.rmtree(folder)  # our own entry, stale or not yet started: begin afresh
        meta = None
    if meta is None:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "documents": len(doc_ids), "chunk_size": chunk_size, "ids_sha256": ids_sha}
        atomic_write(meta_path, json.dumps(meta, indent=2) + "\n")
        atomic_write(folder / "doc_ids.txt", "\n".join(doc_ids) + "\n")
    size = meta["chunk_size"]
    starts = range(0, len(doc_ids), size)
    paths = [folder / f"chunk-{i:05d}.npy" for i in range(len(starts))]
    done = sum(min(size, len(doc_ids) - s) for s, p in zip(starts, paths) if p.is_file())
    with tqdm(total=len(doc_ids), initial=done, desc="encode corpus", unit="doc",
              disable=not show_progress_bar) as bar:
        for start, path in zip(starts, paths):
            if path.is_file():
                continue
            ids = doc_ids[start:start + size]
            parts = []
            for b in range(0, len(ids), batch_size):
                parts.append(encode_passages([corpus[d] for d in ids[b:b + batch_size]]))
                bar.update(len(parts[-1]))
            with atomic_file(path, "wb") as handle:
                np.save(handle, np.concatenate(parts).astype(np.float32))
    return doc_ids, np.concatenate([np.load(p) for p in paths])
