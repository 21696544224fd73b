"""What ``llara_retrieval.encode`` and ``.search`` share to accept Pyserini's flags unchanged.

Pyserini flags that only make sense for other encoders are accepted: the harmless ones are ignored
with a warning (LLaRA's prompt and pooling come from the encoder spec), the others are errors.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable, Mapping

from llara_retrieval._utils.cli import warn
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.pyserini.hook import warn_loudly

if TYPE_CHECKING:
    from llara_retrieval.core.encoder import LlaraEncoder


def add_encoder_args(parser: argparse.ArgumentParser, ignored: Mapping[str, str]) -> None:
    """The encoder flags both CLIs take, plus Pyserini's flags listed in ``ignored`` (name -> action)."""
    parser.add_argument("--encoder", required=True,
                        help="LLaRA encoder: encoder dir, spec JSON (e.g. encoders/llara-gemma3-270m.json), HF dir "
                             "or hub id")
    parser.add_argument("--encoder-class", default=None,
                        help="only 'llara' (other classes are ignored, with a warning)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", default=None, help="bfloat16, float16 or float32 (default: the spec's, else auto)")
    parser.add_argument("--fp16", action="store_true", help="same as --dtype float16")
    parser.add_argument("--max-length", type=int, default=None,
                        help="token budget: the whole sequence, prompt included, or the text alone, as the spec's "
                             "length_budget says (default: the spec's query/passage max length)")
    for flag, action in ignored.items():
        if action == "store_true":
            parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, default=None, help=argparse.SUPPRESS)


def check_pyserini_flags(prog: str, args: argparse.Namespace, ignored: Mapping[str, str],
                         unsupported: Mapping[str, object]) -> None:
    """Warn about given flags that LLaRA ignores; refuse flags whose feature is not implemented."""
    for flag, default in unsupported.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), default)
        if value not in (default, None, False):
            raise LlaraError(f"{flag} is not supported with a LLaRA encoder")
    given = [f for f in ignored if getattr(args, f.lstrip("-").replace("-", "_")) not in (None, False)]
    if given:
        warn(prog, f"ignoring {', '.join(given)}: a LLaRA encoder's prompts and pooling come from its spec")
    if args.encoder_class not in (None, "llara"):
        warn_loudly(f"--encoder-class {args.encoder_class} ignored: {args.encoder} is a LLaRA encoder and is "
                    "encoded with LLaRA prompts and special-token pooling")
    if args.max_length is not None and args.max_length < 1:
        raise LlaraError(f"--max-length must be positive, not {args.max_length}")


def encoder_loader(args: argparse.Namespace) -> Callable[[], "LlaraEncoder"]:
    """A loader for the encoder the parsed flags name (``--encoder``, ``--device``, ``--dtype``/``--fp16``), so a
    CLI hands its library function a typed callable and the model loads only once the inputs are checked."""
    name, device, dtype = args.encoder, args.device, ("float16" if args.fp16 else args.dtype)

    def load() -> "LlaraEncoder":
        from llara_retrieval.core.encoder import LlaraEncoder  # torch is imported only now: bad inputs fail fast

        return LlaraEncoder.from_pretrained(name, device=device, dtype=dtype)

    return load


def split_subcommands(argv: list[str], commands: tuple[str, ...]) -> dict[str, list[str]]:
    """Pyserini's ``input … output … encoder …`` command line, cut at each command word."""
    parts: dict[str, list[str]] = {"": []}
    current = ""
    for arg in argv:
        if arg in commands:
            current = arg
            parts.setdefault(current, [])
        else:
            parts[current].append(arg)
    return parts
