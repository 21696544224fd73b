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

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from llara_retrieval._utils.atomic import atomic_file
from llara_retrieval._utils.errors import LlaraError, at, first_line
from llara_retrieval._utils.jsonl import read_jsonl
from llara_retrieval._utils.text import read_text
from llara_retrieval.core.loading import resolve_spec
from llara_retrieval.train.trainer import cli_main

GROUP_FIELDS = ("doc_id", "article", "title")


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    """Only the tokenizer of an encoder/model name or path (no weights loaded)."""
    from transformers import AutoTokenizer

    from llara_retrieval.core.default_model import ensure_default_model

    base = resolve_spec(name_or_path).base_model
    base = str(ensure_default_model()) if base == "default" else base
    try:
        if base.endswith(".gguf"):
            return AutoTokenizer.from_pretrained(str(Path(base).parent), gguf_file=Path(base).name)
        return AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise LlaraError(f"cannot load the tokenizer of {name_or_path!r}: {first_line(exc)}") from None


def read_units(path: Path, group_field: str | None) -> Iterator[tuple[str, str, str | None]]:
    """``("pair", a, b)`` or ``("para", text, group)`` items of one input file."""
    if path.suffix == ".txt":
        blocks = read_text(path).split("\n\n")
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


@dataclass
class PrepareArguments:
    """What ``prepare`` reads and writes."""

    input: list[str] = field(metadata={"help": "JSONL or .txt files of running text"})
    output: str = field(metadata={"help": "pretraining JSONL to write"})
    tokenizer: str = field(default="default", metadata={"help": "encoder/model whose tokenizer counts tokens"})
    chunk_tokens: int = field(default=96, metadata={"help": "tokens per chunk"})
    group_field: str | None = field(default=None, metadata={"help": "field grouping paragraphs into documents"})
    max_records: int | None = field(default=None, metadata={"help": "stop after N output records"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run model code from the hub"})


ARGUMENT_TYPES = (PrepareArguments,)  # the flags of `train prepare`


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main("prepare", ARGUMENT_TYPES, _prepare_and_report, argv)


def _prepare_and_report(args: PrepareArguments) -> None:
    print(f"prepare: wrote {prepare(args)} records to {args.output}", file=sys.stderr)


def prepare(args: PrepareArguments) -> int:
    """Write the pretraining JSONL atomically; returns the number of records."""
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise LlaraError(f"{out}: already exists (pass --overwrite to replace it)")
    inputs = [Path(p) for p in args.input]
    for path in inputs:
        if not path.is_file():
            raise LlaraError(f"{path}: no such file")
    chunker = Chunker(load_tokenizer(args.tokenizer, args.trust_remote_code), args.chunk_tokens)
    count = 0
    with atomic_file(out) as handle, tqdm(desc="prepare", unit="rec") as bar:
        units = (unit for path in inputs for unit in read_units(path, args.group_field))
        for rec in records(units, chunker):
            handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
            count += 1
            bar.update()
            if args.max_records and count >= args.max_records:
                break
        if not count:
            raise LlaraError(f"no text found in {', '.join(map(str, inputs))}")
    return count
