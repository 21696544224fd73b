"""Atomic outputs: every file or folder this tool writes appears whole or not at all.

Each writer builds its output beside the target, in a hidden ``.<name>.partial-<pid>@<host>.*`` temp, and
renames it into place, so an interrupted run never leaves something that looks finished. The temp names
the process that writes it: a rerun removes the temps of writers that are gone (a SIGKILL leaves them
behind) and never those of a live process writing the same output. Files get the user's usual mode
(``0666 & ~umask``), not ``mkstemp``'s 0600.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, Iterator

PARTIAL_PREFIX = "."
PARTIAL_TAG = "partial-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    """``.<name>.partial-<pid>@<host>.``: hidden, and says which process writes it."""
    return f"{PARTIAL_PREFIX}{path.name}.{PARTIAL_TAG}{os.getpid()}@{socket.gethostname()}."


def _writer_is_gone(temp_name: str, path: Path) -> bool:
    """True when the temp ``temp_name`` beside ``path`` was made by a process of this host that has ended."""
    match = re.fullmatch(r"(\d+)@(.+)\.[^.]+", temp_name[len(f"{PARTIAL_PREFIX}{path.name}.{PARTIAL_TAG}"):])
    if not match or match.group(2) != socket.gethostname():
        return False  # another machine's writer (a shared file system): it may still be running
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Remove the hidden temps that killed writers of ``path`` left beside it; returns what was removed.

    Every writer here calls it before it starts, so rerunning a killed command cleans up after it.
    """
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for stale in path.parent.glob(f"{PARTIAL_PREFIX}{path.name}.{PARTIAL_TAG}*"):
            if _writer_is_gone(stale.name, path):
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
                removed.append(stale)
    return removed


@contextlib.contextmanager
def temp_dir_beside(path: str | Path) -> Iterator[Path]:
    """A hidden temp folder beside ``path`` (its parents created), removed at exit whatever happens.

    The building block of :func:`atomic_dir` and of writers that move several files into place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing (``"w"`` text UTF-8, ``"wb"`` bytes); rename on success.

    Args:
        path: the final file; its parent folders are created.
        mode: ``"w"`` or ``"wb"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=path.parent)
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
    with temp_dir_beside(path) as tmp:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists() and replace:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        try:
            tmp.rename(path)
        except OSError:  # another process finished the same output first
            if not path.exists():
                raise
