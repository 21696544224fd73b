"""User-facing errors: one line that says what is wrong and where, never a deep traceback."""


class LlaraError(ValueError):
    """A problem with the user's input (a file, a model path, an argument), reported in one line."""


class LlaraWarning(UserWarning):
    """Something the user should know that does not stop the run (a duplicate id, a skipped record).

    The one warning channel of the library: the command-line tools show each as ``prog: warning: …``.
    """


def at(path: object, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``) for error messages."""
    return f"{path}:{line}" if line is not None else str(path)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
