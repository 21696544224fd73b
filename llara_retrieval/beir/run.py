"""The BEIR benchmark job: for each dataset, BM25, LLaRA and their fusions, each as a TREC run and a
metrics JSON, then one table across datasets and systems.

Outputs are named ``run.<dataset>.<split>.<system>.trec`` and ``….metrics.json`` with ``<system>`` one of
``bm25``, ``<encoder>`` (the encoder's short name), ``hybrid-rrf-<encoder>``, ``hybrid-linear-<encoder>``.
Every file is written to a temp name and renamed; files that llara-beir did not write are never
replaced unless ``overwrite=True``; all inputs are read and checked before anything is written.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.beir.report import TOOL, is_ours, table_is_ours, write_tables
from llara_retrieval.pyserini.bm25 import K1, B, bm25_search, build_bm25_index
from llara_retrieval.retrieval.data import BeirDataset, load_dataset
from llara_retrieval.retrieval.fusion import (
    DEFAULT_NORMALISATION,
    DENSE_WEIGHT,
    NORMALISATIONS,
    RRF_K,
    interpolate,
    rrf,
)
from llara_retrieval.retrieval.metrics import evaluate, judged_queries, write_metrics
from llara_retrieval.retrieval.runs import Run, encoder_name, ranked, write_run

FOREIGN = f"exists and was not written by {TOOL} (pass --overwrite or another --output)"


def run_path(output: Path, dataset: str, split: str, system: str) -> Path:
    return output / f"run.{dataset}.{split}.{system}.trec"


def metrics_path(run_file: Path) -> Path:
    return run_file.with_suffix(".metrics.json")


def _check_targets(output: Path, data: Sequence[BeirDataset], systems: Sequence[str], overwrite: bool) -> None:
    """Refuse, before any work, to replace a file llara-beir did not write."""
    names = [d.name for d in data]
    if len(set(names)) != len(names):
        clash = max(names, key=names.count)
        raise LlaraError(f"two datasets share the folder name {clash!r}: their runs would collide")
    if overwrite:
        return
    for ds in data:
        for system in systems:
            run_file = run_path(output, ds.name, ds.split, system)
            for path in (run_file, metrics_path(run_file)):
                if path.exists() and not is_ours(metrics_path(run_file)):
                    raise LlaraError(f"{path}: {FOREIGN}")
    for table in (output / "results.md", output / "results.csv"):
        if table.exists() and not table_is_ours(table):
            raise LlaraError(f"{table}: {FOREIGN}")


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"{TOOL}: {message}", file=sys.stderr, flush=True)


def _timed(make: Callable[[], Run]) -> tuple[Run, float]:
    start = time.perf_counter()
    run = make()
    return run, round(time.perf_counter() - start, 2)


def run_beir(datasets: Sequence[str | Path], encoder: str | Path | None = None, output: str | Path = "runs", *,
             split: str = "test", bm25: bool = False, hybrid: bool = False, top_k: int = 1000, batch_size: int = 32,
             max_length: int | None = None, query_max_length: int | None = None,
             hybrid_weight: float = DENSE_WEIGHT, hybrid_normalisation: str = DEFAULT_NORMALISATION, rrf_k: int = RRF_K,
             cache_dir: str | Path | None = None,
             device: str | None = None, dtype: str | None = None, chunk_size: int = 256, threads: int = 2,
             overwrite: bool = False, show_progress_bar: bool = True) -> list[dict]:
    """Run and evaluate every system on every dataset; returns the metrics records (also on disk)."""
    if hybrid and encoder is None:
        raise LlaraError("hybrid fusion needs a dense run: pass an encoder")
    bm25 = bm25 or hybrid
    if encoder is None and not bm25:
        raise LlaraError("nothing to run: pass an encoder and/or ask for BM25")
    for flag, value in (("--top-k", top_k), ("--batch-size", batch_size), ("--chunk-size", chunk_size),
                        ("--threads", threads)):
        if value < 1:
            raise LlaraError(f"{flag} must be at least 1, not {value}")
    if not 0.0 <= hybrid_weight <= 1.0:
        raise LlaraError(f"the hybrid weight must be in [0, 1], not {hybrid_weight}")
    if hybrid_normalisation not in NORMALISATIONS:
        raise LlaraError(f"the hybrid normalisation must be one of {', '.join(NORMALISATIONS)}, "
                         f"not {hybrid_normalisation!r}")
    quiet = not show_progress_bar
    output = Path(output)
    data = [load_dataset(d, split, cache_dir) for d in datasets]
    enc = encoder_name(encoder) if encoder is not None else None
    systems = (["bm25"] if bm25 else []) + ([enc] if enc else []) + (
        [f"hybrid-rrf-{enc}", f"hybrid-linear-{enc}"] if hybrid else [])
    _check_targets(output, data, systems, overwrite)

    dense = None
    if encoder is not None:
        from llara_retrieval.retrieval.dense import DenseRunner
        _say(f"loading encoder {encoder}", quiet)
        dense = DenseRunner(encoder, cache_dir, batch_size, max_length, query_max_length, device, dtype, chunk_size)
    job = _Job(output, enc, dense, bm25, hybrid, top_k, hybrid_weight, hybrid_normalisation, rrf_k, cache_dir, threads,
               show_progress_bar)
    records = []
    for ds in data:
        _say(f"{ds.name} ({ds.split}): {len(ds.corpus)} documents, {len(ds.queries)} judged queries", quiet)
        records += _run_dataset(ds, job)
    _say(f"table: {output / 'results.md'}", quiet)
    return records


@dataclass(frozen=True)
class _Job:
    output: Path
    enc: str | None
    dense: object  # DenseRunner or None
    bm25: bool
    hybrid: bool
    top_k: int
    hybrid_weight: float
    hybrid_normalisation: str
    rrf_k: int
    cache_dir: str | Path | None
    threads: int
    progress: bool


def _run_dataset(ds: BeirDataset, job: _Job) -> list[dict]:
    """Each system's run and metrics are written as soon as it finishes (BM25 first: it is quick)."""
    records, runs, enc, k = [], {}, job.enc, job.top_k

    def emit(system: str, kind: str, run: Run, seconds: float, params: dict) -> None:
        runs[system] = run
        records.append(_write(job.output, ds, system, kind, run, seconds, params, k))
        write_tables(job.output)  # after every system: an interrupted job still leaves a table of what finished
        _say(f"{ds.name} {system}: nDCG@10 {records[-1]['metrics']['nDCG@10']:.4f}", not job.progress)

    if job.bm25:
        index = build_bm25_index(ds.root, cache_dir=job.cache_dir, threads=job.threads, corpus=ds.corpus)
        run, secs = _timed(lambda: bm25_search(index, ds.queries, k, threads=job.threads,
                                               show_progress_bar=job.progress))
        emit("bm25", "bm25", run, secs, {"k1": K1, "b": B, "index": str(index)})
    if job.dense is not None:
        run, secs = _timed(lambda: job.dense.run(ds, k, job.progress))
        emit(enc, "dense", run, secs, {"encoder": job.dense.name, "encoder_key": job.dense.key})
    if job.hybrid:
        pair = [runs[enc], runs["bm25"]]
        emit(f"hybrid-rrf-{enc}", "hybrid-rrf", rrf(pair, job.rrf_k, k), 0.0, {"rrf_k": job.rrf_k})
        linear = interpolate(*pair, weight=job.hybrid_weight, depth=k, normalisation=job.hybrid_normalisation)
        emit(f"hybrid-linear-{enc}", "hybrid-linear", linear, 0.0,
             {"dense_weight": job.hybrid_weight, "normalisation": f"{job.hybrid_normalisation} per query"})
    return records


def _write(output: Path, ds: BeirDataset, system: str, kind: str, run: Run, seconds: float, params: dict,
           top_k: int) -> dict:
    run = {qid: {d: scores[d] for d in ranked(scores, top_k)} for qid, scores in run.items()}
    run_file = write_run(run, run_path(output, ds.name, ds.split, system), tag=system)
    record = {"tool": TOOL, "dataset": ds.name, "dataset_path": str(ds.root), "split": ds.split, "system": system,
              "kind": kind, "queries": len(judged_queries(ds.qrels)),
               "top_k": top_k, "corpus_sha256": ds.corpus_sha256,
              "run_file": run_file.name, "seconds": seconds, "params": params,
              "metrics": evaluate(ds.qrels, run)}
    write_metrics(record, metrics_path(run_file))
    return record

