"""Atomic outputs: every file or folder this tool writes appears whole or not at all.

Each writer builds its output beside the target (a hidden ``.<name>.*`` temp) and renames it into
place, so an interrupted run never leaves something that looks finished. Files get the user's usual
mode (``0666 & ~umask``), not ``mkstemp``'s 0600.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

PARTIAL_PREFIX = "."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing (``"w"`` text UTF-8, ``"wb"`` bytes); rename on success.

    Args:
        path: the final file; its parent folders are created.
        mode: ``"w"`` or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_file(path) as handle:
        handle.write(text)
    return Path(path)


def atomic_save_figure(figure, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically (and close it)."""
    import matplotlib.pyplot as plt

    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return Path(path)


def atomic_copy(source: str | Path, path: str | Path) -> Path:
    """Copy ``source`` to ``path`` atomically."""
    with atomic_file(path, "wb") as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle)
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it becomes ``path`` (an existing one is replaced only
    with ``replace=True``, else kept if another process finished first). Removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists() and replace:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        try:
            tmp.rename(path)
        except OSError:  # another process finished the same output first
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_partials(path: str | Path) -> None:
    """Remove the hidden temps that a killed writer of ``path`` left beside it."""
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f"{PARTIAL_PREFIX}{path.name}.*"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
