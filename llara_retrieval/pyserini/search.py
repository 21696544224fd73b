"""``python -m llara_retrieval.search``: search a Faiss index with LLaRA query vectors, write a TREC run.

Takes ``python -m pyserini.search.faiss``'s command line (which the Pyserini hook forwards here for
LLaRA encoders)::

    python -m llara_retrieval.search --index DIR --topics beir-v1.0.0-scifact-test \\
        --encoder encoders/llara-gemma3-270m.json --output runs/run.X.trec --hits 1000

``--topics`` is a Pyserini topics name or a file (``qid<TAB>query`` TSV[.gz], BEIR ``queries.jsonl``).
Run files go to ``runs/run.<encoder>.<topics>.trec`` unless ``--output`` says
otherwise; when qrels are known (``--qrels``, or the Pyserini qrels of a named topic set) the metrics go
beside the run as ``<run>.metrics.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval._utils.cli import run_cli, warn
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.pyserini.flags import add_encoder_args, check_pyserini_flags, encoder_loader
from llara_retrieval.pyserini.topics import qrels_file, read_topics, topics_label
from llara_retrieval.retrieval.faiss_index import read_index, read_meta, search_index, to_device
from llara_retrieval.retrieval.metrics import evaluate, write_metrics
from llara_retrieval.retrieval.runs import encoder_name, ranked, read_qrels, write_run

PROG = "llara_retrieval.search"
RUNS_DIR = Path("runs")
IGNORED = {"--pooling": "value", "--l2-norm": "store_true", "--tokenizer": "value", "--query-prefix": "value",
           "--normalize-distances": "store_true"}
UNSUPPORTED = {"--encoded-queries": None, "--pca-model": None, "--prf-depth": 0, "--searcher": "simple",
               "--max-passage": False, "--multimodal": False, "--instruction-config": None,
               "--topics-format": "default", "--sparse-index": None, "--ance-prf-encoder": None, "--rerank": False}


@dataclass
class SearchOutput:
    run_path: Path
    metrics_path: Path | None = None
    metrics: dict = field(default_factory=dict)


def run_file_name(encoder: str | Path, topics: str | Path, runs_dir: str | Path = RUNS_DIR) -> Path:
    """The documented default: ``runs/run.<encoder>.<topics>.trec``."""
    return Path(runs_dir) / f"run.{encoder_name(encoder)}.{topics_label(topics)}.trec"


def metrics_file_name(run_path: str | Path) -> Path:
    """``run.X.trec`` -> ``run.X.metrics.json``, beside the run."""
    run_path = Path(run_path)
    stem = run_path.name[:-len(".trec")] if run_path.name.endswith(".trec") else run_path.name
    return run_path.with_name(f"{stem}.metrics.json")


def search(index_dir: str | Path, topics: str | Path, encoder, output: str | Path | None = None, hits: int = 1000,
           batch_size: int = 32, max_length: int | None = None, qrels: str | Path | None = None,
           threads: int | None = None, faiss_device: str = "auto", ef_search: int | None = None,
           remove_query: bool = False, output_format: str = "trec", overwrite: bool = False,
           encoder_name: str | None = None, tag: str = "llara") -> SearchOutput:
    """Search ``index_dir`` for every topic; write the run (and metrics when qrels are known).

    ``encoder`` is a :class:`~llara_retrieval.LlaraEncoder`, a name, or a function returning one (the
    index, topics and qrels are read first, so their errors come before the model loads and leave no file).
    """
    if hits < 1:
        raise LlaraError(f"--hits must be positive, not {hits}")
    if batch_size < 1:
        raise LlaraError(f"--batch-size must be at least 1, not {batch_size}")
    if output_format not in ("trec", "msmarco"):
        raise LlaraError(f"--output-format {output_format!r}: only 'trec' and 'msmarco'")
    encoder_name = encoder_name or (str(encoder) if isinstance(encoder, (str, Path)) else "encoder")
    output = Path(output) if output else run_file_name(encoder_name, topics)
    for path in (output, metrics_file_name(output)):
        if path.exists() and not overwrite:
            raise LlaraError(f"{path}: already exists (pass --overwrite to replace it)")
    index, docids = read_index(index_dir)
    queries = read_topics(topics)
    qrels_path = _qrels_path(qrels, topics)
    judgements = read_qrels(qrels_path) if qrels_path is not None else None  # a bad file stops us before any output
    encoder = _materialise(encoder)
    if index.d != encoder.dim:
        raise LlaraError(f"{index_dir}: index vectors have dimension {index.d} but encoder {encoder_name} gives "
                         f"{encoder.dim} (built by {read_meta(index_dir).get('encoder', 'another encoder')}?)")
    started = time.time()
    qids = list(queries)
    vectors = encoder.encode_queries([queries[q] for q in qids], batch_size, max_length)
    scores, rows = search_index(to_device(index, faiss_device), vectors, hits + int(remove_query), threads, ef_search)
    run: dict[str, dict[str, float]] = {}
    for qid, q_scores, q_rows in zip(qids, scores, rows):
        ranked = [(docids[r], float(s)) for s, r in zip(q_scores, q_rows) if r >= 0]
        run[qid] = {d: s for d, s in ranked if not (remove_query and d == qid)}
    if output_format == "trec":
        write_run(run, output, tag, top_k=hits)
    else:
        atomic_write(output, _msmarco_text(run, hits))
    result = SearchOutput(output)
    if judgements is not None:
        result.metrics = evaluate(judgements, run)
        result.metrics_path = write_metrics({
            "metrics": result.metrics, "run": str(output), "encoder": encoder_name, "index": str(index_dir),
            "topics": str(topics), "qrels": str(qrels_path), "hits": hits, "queries": len(qids),
            "search_seconds": round(time.time() - started, 3)}, metrics_file_name(output))
    return result


def _materialise(encoder):
    if isinstance(encoder, (str, Path)):
        from llara_retrieval.core.encoder import LlaraEncoder

        return LlaraEncoder.from_pretrained(encoder)
    return encoder() if callable(encoder) else encoder


def _qrels_path(qrels: str | Path | None, topics: str | Path) -> Path | None:
    """Explicit qrels must exist; a named topic set's qrels are used when Pyserini has them."""
    if qrels is not None:
        return qrels_file(qrels)
    if Path(str(topics)).expanduser().exists():
        return None
    try:
        return qrels_file(topics)
    except LlaraError as exc:
        warn(PROG, f"no metrics: {exc}")
        return None


def _msmarco_text(run: dict[str, dict[str, float]], hits: int) -> str:
    lines = []
    for qid in sorted(run):
        lines += [f"{qid}\t{docid}\t{rank}" for rank, docid in enumerate(ranked(run[qid], hits), 1)]
    return "\n".join(lines) + ("\n" if lines else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", required=True, help="Faiss index dir (index + docid)")
    parser.add_argument("--topics", required=True, help="Pyserini topics name or topics file")
    parser.add_argument("--output", default=None, help="run file (default: runs/run.<encoder>.<topics>.trec)")
    parser.add_argument("--qrels", default=None, help="qrels file or Pyserini name for the metrics JSON "
                                                      "(default: the topics name's qrels, when it has some)")
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32, help="queries encoded together")
    parser.add_argument("--threads", type=int, default=None, help="Faiss search threads")
    parser.add_argument("--faiss-device", default="auto", help="auto (GPU if faiss-gpu sees one), cpu, cuda:N")
    parser.add_argument("--ef-search", type=int, default=None, help="efSearch for an HNSW index")
    parser.add_argument("--remove-query", action="store_true", help="drop hits whose doc id is the query id")
    parser.add_argument("--output-format", default="trec", help="trec or msmarco")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    add_encoder_args(parser, IGNORED)
    for flag, default in UNSUPPORTED.items():
        kind = {bool: dict(action="store_true"), int: dict(type=int, default=default)}.get(type(default),
                                                                                           dict(default=default))
        parser.add_argument(flag, help=argparse.SUPPRESS, **kind)
    for flag in ("--binary-hits", "--rocchio-alpha", "--rocchio-beta", "--rocchio-gamma", "--rocchio-topk",
                 "--rocchio-bottomk", "--prf-method"):
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)  # meaningful only with PRF (refused)
    return parser


def main(argv: list[str] | None = None, via_pyserini: bool = False) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        if via_pyserini:
            print(f"llara-retrieval: {args.encoder} is a LLaRA encoder: python -m pyserini.search.faiss runs "
                  f"python -m {PROG} (same flags)", file=sys.stderr)
        check_pyserini_flags(PROG, args, IGNORED, UNSUPPORTED)
        out = search(args.index, args.topics, encoder_loader(args), args.output, args.hits, args.batch_size,
                     args.max_length, args.qrels, args.threads, args.faiss_device, args.ef_search,
                     args.remove_query, args.output_format, args.overwrite, encoder_name=args.encoder)
        print(f"{PROG}: wrote {out.run_path}", file=sys.stderr)
        if out.metrics_path:
            shown = ", ".join(f"{k} {out.metrics[k]:.4f}" for k in ("nDCG@10", "Recall@100") if k in out.metrics)
            print(f"{PROG}: {shown} -> {out.metrics_path}", file=sys.stderr)

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
