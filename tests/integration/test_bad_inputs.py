"""Bad inputs and interruptions against the real commands (issue 16): one row per case.

Each row runs a real command in a subprocess (``python -m llara_retrieval.…``, or Pyserini's form through the
hook) in a folder of its own, with the tiny LLaMA encoder of ``tests/support/tiny.py`` and Cranfield documents,
and checks

- the exit status: 1 for a bad input, 0 for a recoverable one (a warning) or a resumed run;
- stderr: no traceback; an error is exactly one ``prog: error: …`` line, the last one, matching the row's regex
  (with ``file:line`` where there is one); every regex of the row matches an error or warning line;
- the disk: every file the row's setup wrote is byte-identical afterwards unless the row names it in
  ``changes`` (nothing a user wrote is lost), no hidden ``.partial-*`` temp of this process's children is left,
  and the row's own ``after`` check (no output after an error, what a resumed run wrote, ...).

The next bad input is one more ``Row`` in ``ROWS``. Rows that train are marked ``slow``; none needs the JVM.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from llara_retrieval.retrieval.faiss_index import read_index, read_vectors
from llara_retrieval.retrieval.runs import read_run
from tests.support.finetune import mini_beir

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 24
ENCODE_FLAGS = ["--max-length", "64", "--device", "cpu", "--batch-size", "8"]
FINETUNE_FLAGS = ["--train_group_size", "2", "--query_max_len", "48", "--passage_max_len", "64",
                  "--temperature", "0.05", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3",
                  "--logging_steps", "1", "--max_steps", "2", "--save_steps", "1", "--seed", "3",
                  "--lora", "--lora_r", "4", "--lora_alpha", "8", "--dataloader_pin_memory", "false",
                  "--precision", "float32"]


@dataclass
class Work:
    """What the rows share, built once per module: a tiny encoder dir, Cranfield documents, a Faiss index of them,
    topics and qrels, a small BEIR folder, fine-tuning data, and the subprocess environment."""

    root: Path
    encoder: Path
    docs: list[dict]
    index: Path
    topics: dict[str, str]
    qrels: list[tuple[str, str, int]]
    beir: Path
    train: Path
    env: dict
    extra: dict = field(default_factory=dict)  # fixtures only some rows need (see Row.needs)


@dataclass
class Ctx:
    """One row's run: its folder (the command's working directory) and the shared work."""

    dir: Path
    work: Work

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def corpus(self, lines: list[bytes | dict], name: str = "corpus.jsonl") -> Path:
        """A JSONL file of records (dicts) and raw byte lines."""
        return self.write(name, b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                                         for line in lines))

    def copy(self, source: Path, name: str) -> Path:
        shutil.copytree(source, self.dir / name)
        return self.dir / name


@dataclass(frozen=True)
class Row:
    id: str
    argv: Callable[[Ctx], list[str]]  # after ``python``
    messages: tuple[str, ...]  # regexes: the error line (status 1), the warnings
    status: int = 1
    files: Callable[[Ctx], object] = lambda ctx: None  # writes the row's inputs into ctx.dir
    after: Callable[[Ctx], object] = lambda ctx: None  # checks what is on disk afterwards
    changes: tuple[str, ...] = ()  # prefixes of setup files the command may change or remove
    needs: tuple[str, ...] = ()  # module fixtures (put in work.extra)
    marks: tuple = ()


# ---- inputs --------------------------------------------------------------------------------------------------

LATIN1_LINE = b'{"_id": "x9", "title": "Caf\xe9 flow", "text": "boundary layer"}'  # JSONL with a Latin-1 byte
LATIN1_TOPIC, LATIN1_QREL, LATIN1_TEXT = b"2\tCaf\xe9", b"1 0 Caf\xe9 1", b"Heat in a Caf\xe9."


def not_utf8(file: str, line: int, raw: bytes = LATIN1_LINE) -> str:
    """The error for the Latin-1 byte 0xe9 in line ``line`` of ``file``, whose bytes are ``raw``."""
    column = raw.index(b"\xe9") + 1  # only ASCII before it: the byte offset is the column
    return rf"{re.escape(file)}:{line}: not UTF-8 text \(byte 0xe9 at column {column}\); save the file as UTF-8$"


def ended_pid() -> int:
    """The id of a process that has ended: what a SIGKILLed writer leaves in its temps' names."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def partial_name(target: str, pid: int, suffix: str = "k1ll3d") -> str:
    return f".{target}.partial-{pid}@{socket.gethostname()}.{suffix}"


def corrupt(ctx: Ctx, how: str) -> Path:
    """A copy of the tiny encoder dir whose ``model.safetensors`` is damaged as ``how`` says."""
    folder = ctx.copy(ctx.work.encoder, "llara-bad")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"garbled": b"\x00garbage" * 64 + data[512:], "truncated": data[:len(data) // 2],
                         "empty": b"", "bad-header": data[:8] + b"{'no json" + data[17:]}[how])
    return folder


class _Unpickled:
    """Unpickling this creates a file: proof that the pickle was opened."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def pickled_adapter(ctx: Ctx) -> Path:
    """A PEFT adapter dir on the tiny encoder whose weights exist only as a (booby-trapped) pickle."""
    folder = ctx.dir / "adapter"
    folder.mkdir()
    ctx.write("adapter/adapter_config.json", json.dumps({
        "base_model_name_or_path": str(ctx.work.encoder), "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4,
        "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}))
    ctx.write("adapter/adapter_model.bin", pickle.dumps(_Unpickled(str(ctx.dir / "UNPICKLED"))))
    return folder


# ---- commands ------------------------------------------------------------------------------------------------

def encode(ctx: Ctx, *flags: str, corpus: str = "corpus.jsonl", out: str = "index", encoder=None) -> list[str]:
    return ["-m", "llara_retrieval.encode", "input", "--corpus", corpus, "--fields", "title", "text",
            "output", "--embeddings", out, "--to-faiss",
            "encoder", "--encoder", str(encoder or ctx.work.encoder), "--fields", "title", "text", *ENCODE_FLAGS, *flags]


def search(ctx: Ctx, *flags: str, module: str = "llara_retrieval.search", encoder=None, qrels: str = "qrels.txt",
           topics: str = "topics.tsv") -> list[str]:
    return ["-m", module, "--index", str(ctx.work.index), "--topics", topics, "--qrels", qrels,
            "--encoder", str(encoder or ctx.work.encoder), "--output", "run.trec", "--hits", "5",
            "--max-length", "64", "--device", "cpu", *flags]


def beir(ctx: Ctx, *flags: str, dataset: str = "beir", encoder=None) -> list[str]:
    return ["-m", "llara_retrieval.beir", "--dataset", dataset, "--encoder", str(encoder or ctx.work.encoder),
            "--split", "dev", "--output", "out", "--cache-dir", "cache", "--top-k", "10", "--max-length", "64",
            "--device", "cpu", "--quiet", *flags]


def finetune(ctx: Ctx, *flags: str, model=None, data=None, out: str = "ft") -> list[str]:
    return ["-m", "llara_retrieval.train", "finetune", "--model_name_or_path", str(model or ctx.work.encoder),
            "--train_data", str(data or ctx.work.train), "--output_dir", out, *FINETUNE_FLAGS, *flags]


def pretrain(ctx: Ctx, *flags: str, data: str = "pretrain.jsonl", out: str = "pt") -> list[str]:
    return ["-m", "llara_retrieval.train", "pretrain", "--model_name_or_path", str(ctx.work.encoder),
            "--train_data", data, "--output_dir", out, "--max_length", "48", "--length_budget", "branch",
            "--per_device_train_batch_size", "2",
            "--max_steps", "1", "--save_strategy", "no", "--report_to", "none", *flags]


def topics_tsv(ctx: Ctx, extra: str = "") -> Path:
    return ctx.write("topics.tsv", "".join(f"{q}\t{t}\n" for q, t in ctx.work.topics.items()) + extra)


def qrels_txt(ctx: Ctx, lines: bytes | str | None = None) -> Path:
    good = "".join(f"{q} 0 {d} {r}\n" for q, d, r in ctx.work.qrels)
    return ctx.write("qrels.txt", good if lines is None else lines)


def search_inputs(qrels: bytes | str | None = None, topics_extra: str = "") -> Callable[[Ctx], None]:
    def files(ctx: Ctx) -> None:
        topics_tsv(ctx, topics_extra)
        qrels_txt(ctx, qrels)
    return files


def beir_copy(edit: Callable[[Path], object] = lambda root: None) -> Callable[[Ctx], None]:
    def files(ctx: Ctx) -> None:
        edit(ctx.copy(ctx.work.beir, "beir"))
    return files


def replace_line(path: Path, lineno: int, raw: bytes) -> None:
    lines = path.read_bytes().splitlines()
    lines[lineno - 1] = raw
    path.write_bytes(b"\n".join(lines) + b"\n")


# ---- checks afterwards ---------------------------------------------------------------------------------------

def absent(*names: str) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        left = [n for n in names if (ctx.dir / n).exists()]
        assert not left, f"left behind after the error: {left}"
    return check


def index_keeps_first_records(ctx: Ctx) -> None:
    ids, vectors = read_vectors(ctx.dir / "index")
    records = [json.loads(line) for line in (ctx.dir / "corpus.jsonl").read_text().splitlines()]
    firsts = [next(r for r in records if r["_id"] == i) for i in dict.fromkeys(r["_id"] for r in records)]
    assert len(firsts) < len(records)
    assert ids == [r["_id"] for r in firsts]
    expected = ctx.work.extra["encoder_obj"].encode_passages(firsts, max_length=64)
    np.testing.assert_allclose(vectors, expected, atol=2e-5)


def stale_temp_removed_live_one_kept(ctx: Ctx) -> None:
    names = sorted(p.name for p in ctx.dir.iterdir())
    assert not any(str(ctx.work.extra["dead"]) in n for n in names), names
    assert any(n.startswith(f".index.partial-{os.getpid()}@") for n in names), names  # a live writer's temp stays
    index, ids = read_index(ctx.dir / "index")
    assert index.ntotal == len(ids) == N_DOCS


def run_keeps_first_topic(ctx: Ctx) -> None:
    from llara_retrieval.retrieval.faiss_index import flat_search

    run = read_run(ctx.dir / "run.trec")
    assert sorted(run) == sorted(ctx.work.topics)
    encoder = ctx.work.extra["encoder_obj"]
    ids, vectors = read_vectors(ctx.work.index)
    first = ctx.work.topics["1"]
    expected = flat_search(encoder.encode_queries([first], max_length=64), ["1"], vectors, ids, 5)["1"]
    assert sorted(run["1"]) == sorted(expected)
    assert not [p for p in ctx.dir.iterdir() if p.name.startswith(".run.trec.partial-")]


def beir_run_written(ctx: Ctx) -> None:
    runs = sorted((ctx.dir / "out").glob("run.beir.dev.*.trec"))
    assert [p.name for p in runs] == ["run.beir.dev.llara-tiny.trec"], runs
    assert read_run(runs[0])


def resumed_like_uninterrupted(ctx: Ctx) -> None:
    from safetensors.torch import load_file

    done = ctx.work.extra["finetune_run"]
    out = ctx.dir / "ft"
    assert not (out / "checkpoint-3").exists()
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (out / "llara_config.json").is_file()
    for name in ("adapter/adapter_model.safetensors", "model.safetensors"):
        a, b = load_file(done / name), load_file(out / name)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=1e-6, err_msg=f"{name}: {key}")
    steps = [json.loads(line)["step"] for line in (out / "loss_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2]


def pretrained(ctx: Ctx) -> None:
    spec = json.loads((ctx.dir / "pt" / "llara_config.json").read_text())
    assert spec["provenance"]["stage"] == "pretrain"


def incomplete_checkpoints(ctx: Ctx) -> None:
    """What a run killed while writing checkpoint-2 (and creating checkpoint-3) leaves: checkpoint-1 whole,
    checkpoint-2 with only its weights, an empty checkpoint-3, the loss log up to step 2."""
    done = ctx.work.extra["finetune_run"]
    out = ctx.dir / "ft"
    shutil.copytree(done / "checkpoint-1", out / "checkpoint-1")
    (out / "checkpoint-2").mkdir()
    shutil.copy(done / "checkpoint-2" / "adapter_model.safetensors", out / "checkpoint-2")
    (out / "checkpoint-3").mkdir()
    shutil.copy(done / "loss_log.jsonl", out / "loss_log.jsonl")


# ---- the table -----------------------------------------------------------------------------------------------

ENC, SEARCH, BEIR = "llara_retrieval.encode", "llara_retrieval.search", "llara-beir"
NULL_TEXT = r"document '2' has \"text\": null, read as empty text \(1 such document\(s\) in all\)$"

ROWS = [
    # 3. sizes that make no sense: refused before anything is read or loaded
    Row("encode-batch-size-negative", lambda c: encode(c, "--batch-size", "-4"),
        (rf"^{ENC}: error: --batch-size must be at least 1, not -4$",),
        files=lambda c: c.corpus(c.work.docs), after=absent("index")),
    Row("encode-batch-size-zero", lambda c: encode(c, "--batch-size", "0"),
        (rf"^{ENC}: error: --batch-size must be at least 1, not 0$",),
        files=lambda c: c.corpus(c.work.docs), after=absent("index")),
    Row("search-batch-size-zero", lambda c: search(c, "--batch-size", "0"),
        (rf"^{SEARCH}: error: --batch-size must be at least 1, not 0$",),
        files=search_inputs(), after=absent("run.trec")),
    Row("beir-chunk-size-zero", lambda c: beir(c, "--chunk-size", "0"),
        (rf"^{BEIR}: error: --chunk-size must be at least 1, not 0$",),
        files=beir_copy(), after=absent("out", "cache")),
    Row("beir-chunk-size-negative", lambda c: beir(c, "--chunk-size", "-5"),
        (rf"^{BEIR}: error: --chunk-size must be at least 1, not -5$",),
        files=beir_copy(), after=absent("out", "cache")),
    Row("finetune-batch-size-zero", lambda c: finetune(c, "--per_device_train_batch_size", "0"),
        (r"^finetune: error: --per_device_train_batch_size must be at least 1, not 0$",),
        after=absent("ft")),
    # 4. duplicate doc ids: the first record is kept, with the BEIR reader's warning
    Row("encode-duplicate-doc-id", encode,
        (rf"^{ENC}: warning: corpus\.jsonl:{N_DOCS + 1}: duplicate doc id '1' \(first at line 1\); "
         r"kept the first record \(1 duplicate\(s\) in all\)$",),
        status=0, files=lambda c: c.corpus(c.work.docs + [{**c.work.docs[0], "text": "a different text"}]),
        after=index_keeps_first_records, needs=("encoder_obj",)),
    # 5. a damaged model.safetensors: one line in every entry point
    Row("encode-garbled-model", lambda c: encode(c, encoder="llara-bad"),
        (rf"^{ENC}: error: cannot load model '[^']*llara-bad': Error while deserializing header: header too large$",),
        files=lambda c: (c.corpus(c.work.docs), corrupt(c, "garbled")), after=absent("index")),
    Row("search-truncated-model", lambda c: search(c, encoder="llara-bad"),
        (rf"^{SEARCH}: error: cannot load model '[^']*llara-bad': Error while deserializing header: "
         r"incomplete metadata, file not fully covered$",),
        files=lambda c: (search_inputs()(c), corrupt(c, "truncated")), after=absent("run.trec")),
    Row("beir-empty-model", lambda c: beir(c, encoder="llara-bad"),
        (rf"^{BEIR}: error: cannot load model '[^']*llara-bad': Error while deserializing header: header too small$",),
        files=lambda c: (beir_copy()(c), corrupt(c, "empty")), after=absent("out")),
    Row("finetune-bad-header-model", lambda c: finetune(c, model="llara-bad"),
        (r"^finetune: error: cannot load model '[^']*llara-bad': Error while deserializing header: invalid JSON",),
        files=lambda c: corrupt(c, "bad-header"), after=absent("ft")),
    # 6. bytes that are not UTF-8: file and line, in every reader
    Row("encode-corpus-not-utf8", encode, (rf"^{ENC}: error: {not_utf8('corpus.jsonl', 3)}",),
        files=lambda c: c.corpus(c.work.docs[:2] + [LATIN1_LINE] + c.work.docs[2:]), after=absent("index")),
    Row("search-topics-not-utf8", search, (rf"^{SEARCH}: error: {not_utf8('topics.tsv', 2, LATIN1_TOPIC)}",),
        files=lambda c: (qrels_txt(c), c.write("topics.tsv", b"1\tflow\n" + LATIN1_TOPIC + b"\n")),
        after=absent("run.trec")),
    Row("search-qrels-not-utf8", search, (rf"^{SEARCH}: error: {not_utf8('qrels.txt', 2, LATIN1_QREL)}",),
        files=search_inputs(b"1 0 12 1\n" + LATIN1_QREL + b"\n"), after=absent("run.trec", "run.metrics.json")),
    Row("beir-queries-not-utf8", beir, (rf"^{BEIR}: error: .*{not_utf8('beir/queries.jsonl', 1)}",),
        files=beir_copy(lambda root: replace_line(root / "queries.jsonl", 1, LATIN1_LINE)),
        after=absent("out", "cache")),
    Row("finetune-train-not-utf8", lambda c: finetune(c, data="train.jsonl"),
        (rf"^finetune: error: {not_utf8('train.jsonl', 2)}",),
        files=lambda c: c.write("train.jsonl", c.work.train.read_bytes().splitlines(True)[0] + LATIN1_LINE + b"\n"),
        after=absent("ft")),
    Row("pretrain-data-not-utf8", pretrain, (rf"^pretrain: error: {not_utf8('pretrain.jsonl', 1)}",),
        files=lambda c: c.corpus([LATIN1_LINE], "pretrain.jsonl"), after=absent("pt")),
    Row("prepare-text-not-utf8",
        lambda c: ["-m", "llara_retrieval.train", "prepare", "--input", "notes.txt", "--output", "pre.jsonl",
                   "--tokenizer", str(c.work.encoder)],
        (rf"^prepare: error: {not_utf8('notes.txt', 3, LATIN1_TEXT)}",),
        files=lambda c: c.write("notes.txt", b"Wing lift.\n\n" + LATIN1_TEXT + b"\n"), after=absent("pre.jsonl")),
    # 7. bad qrels are found before the run is written: nothing on disk, so the corrected rerun needs no --overwrite
    Row("search-qrels-columns", search,
        (rf"^{SEARCH}: error: qrels\.txt:2: expected 3 \(BEIR\) or 4 \(TREC\) columns, got 2$",),
        files=search_inputs("1 0 12 1\n1 12\n"), after=absent("run.trec", "run.metrics.json")),
    Row("pyserini-search-qrels-columns", lambda c: search(c, module="pyserini.search.faiss"),
        (rf"^{SEARCH}: error: qrels\.txt:2: expected 3 \(BEIR\) or 4 \(TREC\) columns, got 2$",),
        files=search_inputs("1 0 12 1\n1 12\n"), after=absent("run.trec", "run.metrics.json")),
    # 9. qrels grades are integers
    Row("search-qrels-inf", search, (rf"^{SEARCH}: error: qrels\.txt:1: relevance 'inf' is not an integer grade$",),
        files=search_inputs("1 0 12 inf\n"), after=absent("run.trec")),
    Row("search-qrels-fraction", search,
        (rf"^{SEARCH}: error: qrels\.txt:2: relevance '2\.7' is not an integer grade$",),
        files=search_inputs("1 0 12 1\n1 0 13 2.7\n"), after=absent("run.trec")),
    Row("beir-qrels-nan", beir, (rf"^{BEIR}: error: .*beir/qrels/dev\.tsv:2: relevance 'nan' is not an integer grade$",),
        files=beir_copy(lambda root: replace_line(root / "qrels" / "dev.tsv", 2, b"1\t12\tnan")),
        after=absent("out", "cache")),
    # 8. PEFT adapters load only from safetensors: a pickle is refused unopened
    Row("encode-pickled-adapter", lambda c: encode(c, encoder="adapter"),
        (rf"^{ENC}: error: [^ ]*adapter: adapter weights load only from adapter_model\.safetensors "
         r"\(found only adapter_model\.bin, a pickle that is never loaded\)",),
        files=lambda c: (c.corpus(c.work.docs), pickled_adapter(c)), after=absent("index", "UNPICKLED")),
    # 9. "text": null reads as empty text, with the same warning in the Pyserini and BEIR readers
    Row("encode-null-text", encode, (rf"^{ENC}: warning: corpus\.jsonl:2: {NULL_TEXT}",), status=0,
        files=lambda c: c.corpus([c.work.docs[0], {**c.work.docs[1], "text": None}, *c.work.docs[2:]]),
        after=lambda c: read_index(c.dir / "index")),
    Row("beir-null-text", beir, (rf"^{BEIR}: warning: .*beir/corpus\.jsonl:2: {NULL_TEXT}",), status=0,
        files=beir_copy(lambda root: replace_line(root / "corpus.jsonl", 2, json.dumps(
            {**json.loads((root / "corpus.jsonl").read_text().splitlines()[1]), "text": None}).encode())),
        after=beir_run_written, marks=(pytest.mark.slow,)),
    # 9. duplicate topic ids: the first query is kept, with a warning naming both lines
    Row("search-duplicate-topic-id", search,
        (rf"^{SEARCH}: warning: topics\.tsv:4: duplicate topic id '1' \(first at line 1\); kept the first record "
         r"\(1 duplicate\(s\) in all\)$",),
        status=0, files=lambda c: (search_inputs(topics_extra="1\tsupersonic nozzle\n")(c),
                                   c.write(partial_name("run.trec", c.work.extra["dead"]), "half a run")),
        after=run_keeps_first_topic, changes=(".run.trec.partial-",), needs=("encoder_obj", "dead")),
    # 9. hidden temps of a killed writer are removed by the rerun; a live writer's are not
    Row("encode-after-sigkill-temps", encode, (), status=0,
        files=lambda c: (c.corpus(c.work.docs),
                         c.write(partial_name("index", c.work.extra["dead"]) + "/docid", "1\n"),
                         c.write(partial_name("index", os.getpid(), "alive1") + "/docid", "1\n")),
        after=stale_temp_removed_live_one_kept, changes=(".index.partial-",), needs=("dead",)),
    # 1. --resume never replaces files a user put in the output dir
    Row("finetune-resume-keeps-user-files", lambda c: finetune(c, "--resume"),
        (r"^finetune: error: ft: --resume found no checkpoint to continue from, and the dir holds files a new run "
         r"would replace \(config\.json, model\.safetensors, notes\.txt\): pass --overwrite_output_dir",),
        files=lambda c: (c.write("ft/config.json", "{}\n"), c.write("ft/model.safetensors", b"my own weights"),
                         c.write("ft/notes.txt", "my notes\n"))),
    # 2. a kill while writing a checkpoint: --resume continues from the newest complete one
    Row("finetune-resume-skips-incomplete-checkpoints", lambda c: finetune(c, "--resume"),
        (r"^finetune: warning: ft/checkpoint-3: incomplete checkpoint .*; removed$",
         r"^finetune: warning: ft/checkpoint-2: incomplete checkpoint \(no trainer_state\.json or no weights: "
         r"a run was stopped while writing it\); removed$"),
        status=0, files=incomplete_checkpoints, after=resumed_like_uninterrupted, changes=("ft/",),
        needs=("finetune_run",), marks=(pytest.mark.slow,)),
    # 9. pretraining data without output_predict: said once, then trained (EBAE and LM only for those records)
    Row("pretrain-without-output-predict", pretrain,
        (r"^pretrain: warning: pretrain\.jsonl:1: no 'output_predict' field: this record has no EBAR target and "
         r"trains EBAE and the LM only \(6 such record\(s\) in all\)$",),
        status=0, files=lambda c: c.corpus([{"input": d["text"][:200]} for d in c.work.docs[:6]], "pretrain.jsonl"),
        after=pretrained, marks=(pytest.mark.slow,)),
]


# ---- fixtures and the test -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_model_dir, cranfield_dir) -> Work:
    from llara_retrieval import LlaraEncoder
    from llara_retrieval.pyserini.encode import encode_corpus

    root = tmp_path_factory.mktemp("bad-inputs")
    encoder = LlaraEncoder.from_pretrained(tiny_model_dir, dtype="float32", device="cpu")
    encoder.save_pretrained(root / "llara-tiny", dtype="float32")  # tight comparisons on any CPU
    docs = [json.loads(line) for line in (cranfield_dir / "corpus.jsonl").read_text().splitlines()[:N_DOCS]]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    encode_corpus(root / "corpus.jsonl", root / "index", encoder, input_fields=("title", "text"), to_faiss=True,
                  max_length=64, show_progress=False)
    queries = [json.loads(line) for line in (cranfield_dir / "queries.jsonl").read_text().splitlines()[:3]]
    beir_dir = mini_beir(root / "beir", n_docs=40)
    train = root / "train.jsonl"
    qrels_rows = [r.split("\t") for r in (beir_dir / "qrels" / "dev.tsv").read_text().splitlines()[1:]]
    corpus = {d["_id"]: d for d in map(json.loads, (beir_dir / "corpus.jsonl").read_text().splitlines())}
    texts = {q["_id"]: q["text"] for q in map(json.loads, (beir_dir / "queries.jsonl").read_text().splitlines())}
    train.write_text("".join(json.dumps({"query": texts[q], "pos": [corpus[d]["text"]],
                                         "neg": [corpus[str((int(d) % 40) + 1)]["text"]]}) + "\n"
                             for q, d, _ in qrels_rows[:8]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "LLARA_CACHE_DIR": str(root / "no-cache")}
    return Work(root=root, encoder=root / "llara-tiny", docs=docs, index=root / "index",
                topics={"1": queries[0]["text"], "2": queries[1]["text"], "3": queries[2]["text"]},
                qrels=[("1", "12", 1), ("2", "13", 2), ("3", "14", 1)], beir=beir_dir, train=train, env=env,
                extra={"encoder": encoder})


def _extra(name: str, work: Work) -> object:
    """Fixtures only some rows need, made on first use."""
    if name not in work.extra:
        if name == "encoder_obj":
            work.extra[name] = work.extra["encoder"]
        elif name == "dead":
            work.extra[name] = ended_pid()
        elif name == "finetune_run":
            from llara_retrieval.train.finetune import train as finetune_stage

            out = work.root / "finetune-run"
            argv = ["--model_name_or_path", str(work.encoder), "--train_data", str(work.train), "--output_dir",
                    str(out), *FINETUNE_FLAGS]
            assert finetune_stage.main(argv) == 0
            work.extra[name] = out
    return work.extra[name]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=r.marks) for r in ROWS])
def test_bad_input(row: Row, work: Work, tmp_path: Path) -> None:
    for name in row.needs:
        _extra(name, work)
    ctx = Ctx(tmp_path / "run", work)
    ctx.dir.mkdir()
    row.files(ctx)
    before = snapshot(ctx.dir)
    proc = subprocess.run([sys.executable, *row.argv(ctx)], cwd=ctx.dir, env=work.env, capture_output=True,
                          text=True, timeout=600)
    report = f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    assert proc.returncode == row.status, report
    assert "Traceback" not in proc.stderr, report
    lines = [line for line in re.split(r"[\r\n]+", proc.stderr) if line.strip()]
    said = [line for line in lines if re.match(r"^[\w.-]+: (error|warning): ", line)]
    errors = [line for line in said if re.match(r"^[\w.-]+: error: ", line)]
    if row.status == 1:
        assert len(errors) == 1 and lines[-1] == errors[0], report
        assert re.search(row.messages[0], errors[0]), report
    else:
        assert not errors, report
    for pattern in row.messages:
        assert any(re.search(pattern, line) for line in said), f"no line matches {pattern!r}\n{report}"
    after = snapshot(ctx.dir)
    changed = [p for p, digest in before.items() if after.get(p) != digest and not p.startswith(row.changes)]
    assert not changed, f"files the command had no business changing: {changed}"
    if row.status == 1:
        assert set(after) <= set(before), f"an error left new files: {sorted(set(after) - set(before))}"
    temps = [p for p in ctx.dir.rglob("*.partial-*") if f".partial-{os.getpid()}@" not in p.name]
    assert not temps, f"temps left: {temps}"
    row.after(ctx)


def test_save_pretrained_onto_a_file_is_refused(work: Work, tmp_path: Path) -> None:
    """The API counterpart of an output path that is a file: a one-line LlaraError, the file untouched."""
    from llara_retrieval import LlaraError

    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    with pytest.raises(LlaraError, match=rf"^{re.escape(str(target))}: exists and is not a directory$"):
        work.extra["encoder"].save_pretrained(target)
    assert target.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
