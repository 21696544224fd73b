"""User-facing errors: one line that says what is wrong and where, never a deep traceback."""


class LlaraError(ValueError):
    """A problem with the user's input (a file, a model path, an argument), reported in one line."""


def at(path: object, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``) for error messages."""
    return f"{path}:{line}" if line is not None else str(path)
