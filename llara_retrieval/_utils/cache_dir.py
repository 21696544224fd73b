"""Where llara-retrieval keeps rebuildable data (BM25 indexes, corpus embeddings, downloaded datasets).

Never inside the package or the user's output folder: ``--cache-dir``, else ``$LLARA_CACHE_DIR``,
else ``$XDG_CACHE_HOME/llara-retrieval`` (``~/.cache/llara-retrieval``), the folder that also holds
the converted default model.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ENV = "LLARA_CACHE_DIR"


def cache_root(override: str | Path | None = None) -> Path:
    """The cache folder (not created here)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "llara-retrieval"


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes: the key that ties a cache entry to one exact corpus."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()
