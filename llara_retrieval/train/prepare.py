"""``python -m llara_retrieval.train prepare``: running text -> pretraining JSONL
``{"input", "output_summarize", "output_predict"}``.

Input records (JSONL, auto-detected per line):

- sentence pairs ``{"sent_a", "sent_b"}``: input = summarize = ``sent_a``, predict = ``sent_b``, each cut
  to ``--chunk_tokens`` tokens;
- paragraphs ``{"text"}``: consecutive records with the same group (``--group_field``, default the
  first of doc_id/article/title present) form a document, which is cut into chunks of
  ``--chunk_tokens`` tokens; each chunk predicts the next one (the last chunk has no EBAR target).

``.txt`` files are read as paragraphs separated by blank lines, one document per file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from ..cli_runner import run_cli
from ..errors import LlaraError, at
from ..jsonl import read_jsonl
from ..loading import resolve_spec

GROUP_FIELDS = ("doc_id", "article", "title")


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """Only the tokenizer of an encoder/model name or path (no weights loaded)."""
    from transformers import AutoTokenizer

    from ..default_model import ensure_default_model

    base = resolve_spec(name_or_path).base_model
    base = str(ensure_default_model()) if base == "default" else base
    try:
        if base.endswith(".gguf"):
            return AutoTokenizer.from_pretrained(str(Path(base).parent), gguf_file=Path(base).name)
        return AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise LlaraError(f"cannot load the tokenizer of {name_or_path!r}: {str(exc).splitlines()[0]}") from None


def read_units(path: Path, group_field: str | None) -> Iterator[tuple[str, str, str | None]]:
    """``("pair", a, b)`` or ``("para", text, group)`` items of one input file."""
    if path.suffix == ".txt":
        blocks = path.read_text(encoding="utf-8").split("\n\n")
        yield from (("para", b.strip(), str(path)) for b in blocks if b.strip())
        return
    for lineno, rec in read_jsonl(path):
        if isinstance(rec.get("sent_a"), str) and isinstance(rec.get("sent_b"), str):
            yield "pair", rec["sent_a"], rec["sent_b"]
        elif isinstance(rec.get("text"), str):
            field = group_field or next((f for f in GROUP_FIELDS if f in rec), None)
            group = rec.get(field) if field else None
            yield "para", rec["text"], (f"{lineno}" if group is None else str(group))
        else:
            raise LlaraError(f"{at(path, lineno)}: expected a 'text' field or 'sent_a' and 'sent_b' fields")


class Chunker:
    """Cuts text into pieces of at most ``size`` tokens, at token boundaries (via offset mappings)."""

    def __init__(self, tokenizer, size: int):
        if size < 1:
            raise LlaraError(f"--chunk_tokens must be at least 1, not {size}")
        self.tokenizer, self.size = tokenizer, size

    def chunks(self, text: str) -> list[str]:
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        pieces = []
        for start in range(0, len(offsets), self.size):
            window = offsets[start:start + self.size]
            end = offsets[start + self.size][0] if start + self.size < len(offsets) else len(text)
            piece = text[window[0][0]:end].strip()
            if piece:
                pieces.append(piece)
        return pieces

    def head(self, text: str) -> str:
        return (self.chunks(text) or [""])[0]


def records(units: Iterable[tuple[str, str, str | None]], chunker: Chunker) -> Iterator[dict]:
    """Reference records from pairs and paragraph groups (a group is flushed when the group changes)."""
    doc: list[str] = []
    current = None

    def flush():
        pieces = chunker.chunks(" ".join(doc)) if doc else []
        for piece, nxt in zip(pieces, pieces[1:] + [""]):
            yield {"input": piece, "output_summarize": piece, "output_predict": nxt}

    for kind, first, second in units:
        if kind == "pair":
            yield from flush()
            doc, current = [], None
            head = chunker.head(first)
            if head:
                yield {"input": head, "output_summarize": head, "output_predict": chunker.head(second)}
            continue
        if second != current:
            yield from flush()
            doc, current = [], second
        doc.append(first.strip())
    yield from flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llara_retrieval.train prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", required=True, help="JSONL or .txt files of running text")
    parser.add_argument("--output", required=True, help="pretraining JSONL to write")
    parser.add_argument("--tokenizer", default="default", help="encoder/model whose tokenizer counts tokens")
    parser.add_argument("--chunk_tokens", type=int, default=96, help="tokens per chunk (default 96)")
    parser.add_argument("--group_field", default=None, help="field grouping paragraphs into documents")
    parser.add_argument("--max_records", type=int, default=None, help="stop after N output records")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--trust_remote_code", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def body() -> None:
        print(f"prepare: wrote {prepare(args)} records to {args.output}", file=sys.stderr)

    return run_cli("prepare", body)


def prepare(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise LlaraError(f"{out}: already exists (pass --overwrite to replace it)")
    inputs = [Path(p) for p in args.input]
    for path in inputs:
        if not path.is_file():
            raise LlaraError(f"{path}: no such file")
    chunker = Chunker(load_tokenizer(args.tokenizer, args.trust_remote_code), args.chunk_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle, tqdm(desc="prepare", unit="rec") as bar:
            units = (unit for path in inputs for unit in read_units(path, args.group_field))
            for rec in records(units, chunker):
                handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
                count += 1
                bar.update()
                if args.max_records and count >= args.max_records:
                    break
        if not count:
            raise LlaraError(f"no text found in {', '.join(map(str, inputs))}")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return count
