"""``python -m llara_retrieval.encode``: encode a JSONL corpus into Pyserini's dense-index layout.

Takes exactly ``python -m pyserini.encode``'s command line (which the Pyserini hook forwards here for
LLaRA encoders)::

    python -m llara_retrieval.encode input --corpus C.jsonl --fields title text \\
        output --embeddings DIR [--to-faiss] [--overwrite] \\
        encoder --encoder encoders/llara-gemma3-270m.json --fields title text --batch-size 32 \\
        --max-length 256 --device cpu

``input --shard-id I --shard-num N`` encodes one slice, for several processes or GPUs; merge the shard
dirs with ``python -m llara_retrieval.merge``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, Union

from tqdm.auto import tqdm

from llara_retrieval._utils.cli import run_cli
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.pyserini.corpus import read_shard
from llara_retrieval.pyserini.flags import add_encoder_args, check_pyserini_flags, encoder_loader, split_subcommands
from llara_retrieval.retrieval.faiss_index import OutputDir, VectorWriter, write_meta

if TYPE_CHECKING:
    from llara_retrieval.core.encoder import LlaraEncoder

PROG = "llara_retrieval.encode"
EncoderArg = Union["LlaraEncoder", str, Path, Callable[[], "LlaraEncoder"]]
COMMANDS = ("input", "output", "encoder")
CHUNK_BATCHES = 16  # batches sorted by length together: less padding, bounded memory, steady progress
IGNORED = {"--pooling": "value", "--l2-norm": "store_true", "--prefix": "value", "--add-sep": "store_true",
           "--dimension": "value", "--explicit-truncate": "store_true", "--rate-limit": "value"}
UNSUPPORTED = {"--multimodal": False, "--use-openai": False}


def encode_corpus(corpus: str | Path, output: str | Path, encoder: EncoderArg,
                  input_fields: Sequence[str] = ("text",),
                  fields: Sequence[str] | None = None, docid_field: str | None = None, delimiter: str = "\n",
                  shard_id: int = 0, shard_num: int = 1, to_faiss: bool = False, batch_size: int = 32,
                  max_length: int | None = None, overwrite: bool = False, show_progress: bool = True,
                  encoder_name: str | None = None) -> Path:
    """Encode one shard of ``corpus`` with LLaRA passage prompts into ``output`` (Faiss or JSONL layout).

    ``encoder`` is a :class:`~llara_retrieval.LlaraEncoder`, a name for ``LlaraEncoder.from_pretrained``
    or a function returning one: the corpus and ``output`` are checked before the model is loaded.
    """
    if batch_size < 1:
        raise LlaraError(f"--batch-size must be at least 1, not {batch_size}")
    fields = list(fields or input_fields)
    unknown = [f for f in fields if f not in input_fields]
    if unknown:
        raise LlaraError(f"encoder fields {unknown} are not among the input fields {list(input_fields)}")
    shard = read_shard(corpus, input_fields, docid_field, delimiter, shard_id, shard_num)
    if not len(shard):
        raise LlaraError(f"{corpus}: shard {shard_id} of {shard_num} holds no documents")
    out = OutputDir(output, overwrite)
    encoder_name = encoder_name or (str(encoder) if isinstance(encoder, (str, Path)) else None)
    if isinstance(encoder, (str, Path)):
        from llara_retrieval.core.encoder import LlaraEncoder

        encoder = LlaraEncoder.from_pretrained(encoder)
    elif callable(encoder):
        encoder = encoder()
    text_fields = [f for f in fields if f != "title"]
    contents = ["\n".join(shard.fields[f][i] for f in input_fields) for i in range(len(shard))]
    with out as tmp:
        writer = VectorWriter(tmp, to_faiss=to_faiss, to_jsonl=not to_faiss)
        try:
            with tqdm(total=len(shard), desc="encode passages", unit="doc", disable=not show_progress) as bar:
                chunk = batch_size * CHUNK_BATCHES
                for start in range(0, len(shard), chunk):
                    rows = range(start, min(start + chunk, len(shard)))
                    passages = [{"title": shard.fields["title"][i] if "title" in fields else "",
                                 "text": " ".join(shard.fields[f][i] for f in text_fields)} for i in rows]
                    vectors = encoder.encode_passages(passages, batch_size, max_length, show_progress_bar=False)
                    writer.add([shard.ids[i] for i in rows], [contents[i] for i in rows], vectors)
                    bar.update(len(rows))
        finally:
            writer.close()
        write_meta(tmp, {"format": "llara-index/1", "encoder": encoder_name, "spec": encoder.spec.to_dict(),
                         "dim": encoder.dim, "count": writer.count, "index_type": "flat" if to_faiss else "jsonl",
                         "corpus": str(Path(corpus).resolve()), "fields": fields, "shard_id": shard_id,
                         "shard_num": shard_num,
                         "max_length": max_length or encoder.spec.passage_max_length})
    return Path(output)


def build_parsers() -> dict[str, argparse.ArgumentParser]:
    main = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                   usage=f"python -m {PROG} input … output … encoder …")
    parsers = {"": main}
    inp = parsers["input"] = argparse.ArgumentParser(prog=f"{PROG} input")
    inp.add_argument("--corpus", required=True, help="JSONL file, or a folder of JSONL files")
    inp.add_argument("--fields", nargs="+", default=["text"], help="fields of each record, in order")
    inp.add_argument("--docid-field", default=None, help="id field (default: id, _id or docid)")
    inp.add_argument("--delimiter", default="\n", help="splits a 'contents' field into --fields")
    inp.add_argument("--shard-id", type=int, default=0, help="0-based shard to encode")
    inp.add_argument("--shard-num", type=int, default=1, help="number of shards")
    out = parsers["output"] = argparse.ArgumentParser(prog=f"{PROG} output")
    out.add_argument("--embeddings", required=True, help="output dir")
    out.add_argument("--to-faiss", action="store_true", help="write a Faiss flat index + docid (else embeddings.jsonl)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing output in that dir")
    enc = parsers["encoder"] = argparse.ArgumentParser(prog=f"{PROG} encoder")
    add_encoder_args(enc, IGNORED)
    enc.add_argument("--fields", nargs="+", default=None, help="fields to encode (default: the input fields)")
    enc.add_argument("--batch-size", type=int, default=32)
    enc.add_argument("--multimodal", action="store_true", help=argparse.SUPPRESS)
    enc.add_argument("--use-openai", action="store_true", help=argparse.SUPPRESS)
    return parsers


def main(argv: list[str] | None = None, via_pyserini: bool = False) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parsers = build_parsers()
    parts = split_subcommands(argv, COMMANDS)
    for command, part in parts.items():
        if "-h" in part or "--help" in part:
            if not command:
                print(__doc__)
                return 0
            parsers[command].parse_args(part)  # prints that part's help and exits
    if parts[""] or not all(c in parts for c in COMMANDS):
        parsers[""].error("expected the three parts: input --corpus … output --embeddings … encoder --encoder …")
    args = {c: parsers[c].parse_args(parts[c]) for c in COMMANDS}
    inp, out, enc = args["input"], args["output"], args["encoder"]

    def body() -> None:
        if via_pyserini:
            print(f"llara-retrieval: {enc.encoder} is a LLaRA encoder: python -m pyserini.encode runs "
                  f"python -m {PROG} (same flags)", file=sys.stderr)
        check_pyserini_flags(PROG, enc, IGNORED, UNSUPPORTED)
        delimiter = inp.delimiter.replace("\\n", "\n")
        encode_corpus(inp.corpus, out.embeddings, encoder_loader(enc), inp.fields, enc.fields,
                      inp.docid_field, delimiter, inp.shard_id, inp.shard_num, out.to_faiss, enc.batch_size,
                      enc.max_length, out.overwrite, encoder_name=enc.encoder)
        print(f"{PROG}: wrote {out.embeddings}", file=sys.stderr)

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
