"""Shared behaviour of the command-line tools: one-line errors, non-zero exits, clean interrupts."""
from __future__ import annotations

import signal
import sys
from typing import Callable

from .errors import LlaraError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _terminate(signum, frame):  # SIGTERM unwinds like Ctrl-C, so temp outputs are removed
    raise KeyboardInterrupt


def run_cli(prog: str, body: Callable[[], int | None]) -> int:
    """Run ``body``; a :class:`LlaraError` becomes ``prog: error: …`` on stderr and exit status 2."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, AttributeError):  # not the main thread, or no SIGTERM on this platform
        previous = None
    try:
        return body() or 0
    except LlaraError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no output was finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def warn(prog: str, message: str) -> None:
    print(f"{prog}: warning: {message}", file=sys.stderr)
