"""A seeded dev split carved out of a BEIR dataset's train queries, for model selection that never sees test.

``carve_dev_split`` writes a BEIR view folder: ``corpus.jsonl`` and ``queries.jsonl`` linked to the
dataset's own files (copied where links are impossible), ``qrels/dev.tsv`` (a seeded sample of the queries
that have a positive judgement) and ``qrels/fit.tsv`` (every other judged query of the split, for
training), plus ``split.json`` recording how. The dataset folder itself is never written. Name the view
like the dataset: BM25 indexes and corpus embeddings are cached by folder name and corpus checksum, so
the view reuses those of the dataset.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_dir
from llara_retrieval._utils.cache_dir import file_sha256
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.retrieval.data import qrels_file, resolve_dataset
from llara_retrieval.retrieval.metrics import judged_queries
from llara_retrieval.retrieval.runs import Qrels, read_qrels

DEV, FIT = "dev", "fit"
RECORD = "split.json"


@dataclass(frozen=True)
class DevSplit:
    """Where the view is and which queries went where."""

    root: Path
    dev: list[str]
    fit: list[str]


def choose_dev_queries(qrels: Qrels, fraction: float, seed: int) -> list[str]:
    """``round(fraction * n)`` (at least 1) of the ``n`` queries with a positive judgement, drawn by
    ``random.Random(seed).sample`` from their sorted ids, returned sorted; at least one is left for training.

    Args:
        qrels: the split's judgements.
        fraction: share of the judged queries that go to dev, in (0, 1).
        seed: the draw's seed (the same seed and qrels always give the same dev queries).
    """
    if not 0.0 < fraction < 1.0:
        raise LlaraError(f"dev fraction must be in (0, 1), not {fraction}")
    judged = sorted(judged_queries(qrels))
    if len(judged) < 2:
        raise LlaraError(f"a dev split needs at least 2 queries with a positive judgement, found {len(judged)}")
    k = min(max(1, round(fraction * len(judged))), len(judged) - 1)
    return sorted(random.Random(seed).sample(judged, k))


def _qrels_tsv(qrels: Qrels, queries: list[str]) -> str:
    rows = [f"{q}\t{d}\t{r}" for q in queries for d, r in qrels[q].items()]
    return "query-id\tcorpus-id\tscore\n" + "".join(row + "\n" for row in rows)


def _link(source: Path, target: Path) -> None:
    try:
        os.symlink(source, target)
    except OSError:  # no symlinks here (some Windows and network file systems): a copy reads the same
        shutil.copyfile(source, target)


def carve_dev_split(dataset: str | Path, output: str | Path, split: str = "train", fraction: float = 0.1,
                    seed: int = 13, cache_dir: str | Path | None = None) -> DevSplit:
    """Write the view folder ``output`` (replaced if it exists) with the ``fit`` and ``dev`` qrels of ``split``.

    Args:
        dataset: a BEIR folder or dataset name (as ``llara-beir --dataset``).
        output: the view folder to write; name it like the dataset folder to share its caches.
        split: the qrels split to carve (its queries never include test queries).
        fraction, seed: see :func:`choose_dev_queries`.
        cache_dir: where a dataset given by name is downloaded.

    Returns:
        :class:`DevSplit` with the view's path and the dev and fit query ids (in qrels order for fit).
    """
    root = resolve_dataset(dataset, cache_dir)
    qrels_path = qrels_file(root, split)
    if not qrels_path.is_file():
        raise LlaraError(f"{qrels_path}: missing (the split {split!r} the dev queries are carved from)")
    output = Path(output)
    if output.resolve() == root:
        raise LlaraError(f"{output}: is the dataset folder itself; the dev split is written beside it, never in it")
    qrels = read_qrels(qrels_path)
    dev = choose_dev_queries(qrels, fraction, seed)
    chosen = set(dev)
    fit = [q for q in qrels if q not in chosen]
    record = {"dataset": str(root), "split": split, "fraction": fraction, "seed": seed,
              "qrels_sha256": file_sha256(qrels_path), "rule": "random.Random(seed).sample(sorted judged ids, "
              "max(1, round(fraction * n)))", "dev_queries": len(dev), "fit_queries": len(fit), "dev": dev}
    with atomic_dir(output, replace=True) as folder:
        for name in ("corpus.jsonl", "queries.jsonl"):
            _link((root / name).resolve(), folder / name)
        (folder / "qrels").mkdir()
        qrels_file(folder, DEV).write_text(_qrels_tsv(qrels, dev), encoding="utf-8")
        qrels_file(folder, FIT).write_text(_qrels_tsv(qrels, fit), encoding="utf-8")
        (folder / RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return DevSplit(root=output, dev=dev, fit=fit)
