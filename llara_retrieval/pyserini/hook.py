"""Make Pyserini's own commands work with LLaRA encoders, lazily.

Pyserini has no plugin hook and silently falls back to CLS pooling for an encoder it does not know
(every vector is then the same on a decoder model). A one-line ``.pth`` file installed with the
package calls :func:`install`, which only puts a tiny finder on ``sys.meta_path``; nothing else
happens (no torch, no JVM) until Pyserini itself is imported:

- ``import pyserini``: Java 21+ is configured for pyjnius and ``trec_eval`` and, if
  ``$LLARA_TOPICS_DIR`` is set, its topic and qrels files are copied into Pyserini's cache.
- ``python -m pyserini.encode …`` / ``python -m pyserini.search.faiss …`` naming a LLaRA encoder
  (``--encoder`` a dir with ``llara_config.json`` or a spec JSON): the command runs
  ``llara_retrieval.encode`` / ``llara_retrieval.search``, which take the same flags.
- ``import pyserini.encode`` / ``pyserini.search.faiss`` from Python: a Pyserini encoder class
  given a LLaRA encoder warns loudly, and ``FaissSearcher(index, "<llara encoder>")`` gets a
  :class:`~llara_retrieval.pyserini.encoders.LlaraQueryEncoder`.

Only module names and the ``--encoder`` flag are relied on, so Pyserini 1.6 and 2.x both work;
every patch of a Pyserini attribute is skipped when that attribute is absent.
``LLARA_PYSERINI_HOOK=0`` turns the redirection and the ``FaissSearcher`` patch off (Java set-up and
the warnings stay).
"""
from __future__ import annotations

import os
import sys
from importlib.machinery import ModuleSpec  # already loaded at start-up; importlib.abc would cost ~20 ms

SWITCH_ENV = "LLARA_PYSERINI_HOOK"
TOPICS_ENV = "LLARA_TOPICS_DIR"
SPEC_FILE = "llara_config.json"  # same as spec.SPEC_FILE; spec.py is not imported here to stay tiny
SPEC_FORMAT = "llara-encoder/1"
CLI_TARGETS = {"pyserini.encode": "llara_retrieval.pyserini.encode",
               "pyserini.search.faiss": "llara_retrieval.pyserini.search"}
CLI_REDIRECTS = {f"{name}.__main__": ours for name, ours in CLI_TARGETS.items()}
_warned: set[str] = set()


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def is_llara_encoder(name: object) -> bool:
    """True for an encoder dir with ``llara_config.json`` or a ``.json`` LLaRA spec file (cheap: no model)."""
    if not isinstance(name, (str, os.PathLike)) or not str(name):
        return False
    path = os.path.expanduser(os.fspath(name))
    try:
        if os.path.isdir(path):
            return os.path.isfile(os.path.join(path, SPEC_FILE))
        if os.path.isfile(path) and path.endswith(".json") and os.path.getsize(path) < 1_000_000:
            import json

            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            return isinstance(data, dict) and data.get("format") == SPEC_FORMAT
    except (OSError, ValueError):
        return False
    return False


def encoder_argument(argv: list[str]) -> str | None:
    """The value of ``--encoder`` (last one wins, as in argparse) in a Pyserini command line."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--encoder" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--encoder="):
            found = arg.split("=", 1)[1]
    return found


def main_module() -> str | None:
    """The module of ``python -m MODULE`` while Python is still locating it (``sys.argv[0] == "-m"``)."""
    if sys.argv[:1] != ["-m"]:
        return None
    argv = getattr(sys, "orig_argv", [])
    for i, arg in enumerate(argv[1:], 1):
        if arg == "-m":
            return argv[i + 1] if i + 1 < len(argv) else None
        if arg.startswith("-m") and not arg.startswith("--"):
            return arg[2:]
    return None


def warn_loudly(message: str) -> None:
    """A warning that is hard to miss, printed once per message."""
    if message not in _warned:
        _warned.add(message)
        print(f"\n*** llara-retrieval WARNING: {message} ***\n", file=sys.stderr, flush=True)


def prepare_pyserini() -> None:
    """Java 21+ for pyjnius and trec_eval, and offline topics/qrels; failures warn, never raise."""
    try:
        from llara_retrieval.pyserini.java import configure_java

        configure_java()
    except Exception as exc:  # Pyserini will report its own Java error
        warn_loudly(f"could not configure Java for Pyserini: {exc}")
    if os.environ.get(TOPICS_ENV):
        try:
            from llara_retrieval.pyserini.topics import install_topics_dir

            install_topics_dir(os.environ[TOPICS_ENV])
        except Exception as exc:
            warn_loudly(f"${TOPICS_ENV}: {exc}")


class _CliLoader:
    """Runs one of our CLIs in place of a Pyserini module of ``python -m pyserini.…``.

    For ``-m pyserini.encode`` runpy asks for the code of that module; for ``-m pyserini.search.faiss``
    the parent ``pyserini.search`` is imported first, and running our CLI from there (then exiting)
    skips Pyserini's package imports: seconds of torch/transformers set-up and a JVM start.
    """

    def __init__(self, target: str, origin: str | None = None):
        self.target = target
        self.origin = origin or "<llara-retrieval>"

    def create_module(self, spec):
        return None

    def get_code(self, fullname: str):
        PyseriniFinder.redirected = True
        source = f"import sys\nfrom {self.target} import main\nsys.exit(main(sys.argv[1:], via_pyserini=True))\n"
        return compile(source, self.origin, "exec")

    def exec_module(self, module) -> None:
        sys.modules.pop(module.__name__, None)  # our CLI may import the real package later
        exec(self.get_code(module.__name__), module.__dict__)


class _PatchingLoader:
    """Delegates to Pyserini's loader, then patches the freshly executed module."""

    def __init__(self, original, patch):
        self.original = original
        self.patch = patch

    def create_module(self, spec):
        return self.original.create_module(spec)

    def exec_module(self, module) -> None:
        self.original.exec_module(module)
        try:
            self.patch(module)
        except Exception as exc:  # a Pyserini we do not know: keep it working, say so
            warn_loudly(f"could not patch {module.__name__} for LLaRA encoders ({exc}); "
                        "use python -m llara_retrieval.encode / .search")

    def __getattr__(self, name):
        return getattr(self.original, name)


class PyseriniFinder:
    """Watches only Pyserini's package, its two CLIs and its two dense-retrieval modules."""

    redirected = False

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("pyserini") or fullname.split(".")[0] != "pyserini":
            return None
        if fullname == "pyserini":
            prepare_pyserini()
            return None
        main = main_module()
        if (main in CLI_TARGETS and fullname == ".".join(main.split(".")[:2]) and not PyseriniFinder.redirected
                and enabled() and is_llara_encoder(encoder_argument(sys.argv[1:]))):
            return ModuleSpec(fullname, _CliLoader(CLI_TARGETS[main]))
        if fullname in CLI_REDIRECTS:
            return self._cli_spec(fullname, path, target)
        patch = _PATCHES.get(fullname)
        if patch is None or (fullname != "pyserini.encode" and not enabled()):
            return None
        spec = self._next_spec(fullname, path, target)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patch)
        return spec

    def _next_spec(self, fullname, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _cli_spec(self, fullname, path, target):
        encoder = encoder_argument(sys.argv[1:])
        if not is_llara_encoder(encoder):
            return None
        command = fullname.rsplit(".", 1)[0]
        if not enabled():
            warn_loudly(f"{encoder} is a LLaRA encoder but {SWITCH_ENV}=0: python -m {command} will use a "
                        f"non-LLaRA Pyserini class and produce wrong vectors; run python -m "
                        f"{CLI_REDIRECTS[fullname]} instead")
            return None
        original = self._next_spec(fullname, path, target)
        origin = original.origin if original is not None else None
        return ModuleSpec(fullname, _CliLoader(CLI_REDIRECTS[fullname], origin), origin=origin)


def _warn_on_llara_init(cls) -> None:
    """Wrap ``cls.__init__`` so that a LLaRA encoder passed to a non-LLaRA class warns loudly."""
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "_llara_checked", False):
        return

    def __init__(self, *args, **kwargs):
        for value in list(args[:1]) + [kwargs.get(k) for k in ("model_name", "encoder_dir", "model_path")]:
            if is_llara_encoder(value):
                warn_loudly(f"{value} is a LLaRA encoder but Pyserini's {cls.__name__} would encode it with its own "
                            "pooling (wrong vectors): use llara_retrieval.pyserini.encoders.LlaraDocumentEncoder / "
                            "LlaraQueryEncoder")
                break
        init(self, *args, **kwargs)

    __init__._llara_checked = True
    __init__.__wrapped__ = init
    __init__.__name__, __init__.__qualname__, __init__.__doc__ = init.__name__, init.__qualname__, init.__doc__
    cls.__init__ = __init__


def _patch_encode(module) -> None:
    bases = tuple(b for b in (getattr(module, "DocumentEncoder", None), getattr(module, "QueryEncoder", None)) if b)
    for value in list(vars(module).values()):
        if isinstance(value, type) and issubclass(value, bases) and value not in bases:
            _warn_on_llara_init(value)


def _patch_faiss_search(module) -> None:
    searcher = getattr(module, "FaissSearcher", None)
    from_str = getattr(searcher, "_init_encoder_from_str", None) if searcher else None
    if from_str is None:
        return

    def _init_encoder_from_str(encoder):
        if is_llara_encoder(encoder):
            from llara_retrieval.pyserini.encoders import LlaraQueryEncoder

            return LlaraQueryEncoder(encoder)
        return from_str(encoder)

    searcher._init_encoder_from_str = staticmethod(_init_encoder_from_str)


_PATCHES = {"pyserini.encode": _patch_encode, "pyserini.search.faiss": _patch_faiss_search}


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent); called by the ``.pth`` file."""
    if not any(isinstance(f, PyseriniFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PyseriniFinder())
