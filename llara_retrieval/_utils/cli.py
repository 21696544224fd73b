"""Shared behaviour of the command-line tools: one-line errors and warnings, non-zero exits, clean interrupts."""
from __future__ import annotations

import logging
import signal
import sys
import warnings
from typing import Callable

from llara_retrieval._utils.errors import LlaraError

EXIT_ERROR = 1  # argparse keeps 2 for usage errors
EXIT_INTERRUPTED = 130


class _ProgHandler(logging.Handler):
    """Prints the package's log lines (``llara_retrieval`` logger, INFO and up) as ``prog: message``."""

    def __init__(self, prog: str):
        super().__init__(logging.INFO)
        self.prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{self.prog}: {record.getMessage()}", file=sys.stderr, flush=True)


def _terminate(signum, frame):  # SIGTERM unwinds like Ctrl-C, so temp outputs are removed
    raise KeyboardInterrupt


def run_cli(prog: str, body: Callable[[], int | None], interrupted: str = "no output was finished") -> int:
    """Run ``body``: a :class:`LlaraError` becomes ``prog: error: …`` on stderr and exit status 1, Ctrl-C or
    SIGTERM ``prog: interrupted; <interrupted>`` and 130, a Python warning ``prog: warning: …``, a log line
    of the package (e.g. the precision it runs in) ``prog: …``."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM on this platform
        previous = None
    show_warning = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: warn(prog, str(message))
    logger, handler = logging.getLogger("llara_retrieval"), _ProgHandler(prog)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, in the command's words, whatever the root logger does
    try:
        return body() or 0
    except LlaraError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        warnings.showwarning = show_warning
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def warn(prog: str, message: str) -> None:
    print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
