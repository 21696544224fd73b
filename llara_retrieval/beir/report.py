"""The results table across datasets and systems (markdown for people, CSV for tools), built from the
``*.metrics.json`` files that llara-beir wrote into an output folder, so runs made one dataset at a
time still end up in one table."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval.retrieval.metrics import METRICS

TOOL = "llara-beir"
MD_MARK = f"<!-- written by {TOOL}; rewritten on every run -->"
KIND_ORDER = {"bm25": 0, "dense": 1, "hybrid-rrf": 2, "hybrid-linear": 3}
MD_METRICS = ("nDCG@10", "Recall@100", "Recall@1000", "MRR@10", "MAP@10", "nDCG@100")
CSV_FIELDS = ["dataset", "split", "system", "kind", "queries", *METRICS, "run_file"]


def is_ours(metrics_path: Path) -> bool:
    """True for a metrics JSON written by llara-beir (and so for its run file)."""
    try:
        return json.loads(metrics_path.read_text(encoding="utf-8")).get("tool") == TOOL
    except (OSError, ValueError, AttributeError):
        return False


def table_is_ours(path: Path) -> bool:
    try:
        first = path.read_text(encoding="utf-8").splitlines()[:1]
    except (OSError, UnicodeDecodeError):
        return False
    return first == [MD_MARK] or first == [",".join(CSV_FIELDS)]


def collect(output_dir: str | Path) -> list[dict]:
    """Every llara-beir metrics record in ``output_dir``, ordered by dataset, split, then system kind."""
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(output_dir).glob("*.metrics.json"))
               if is_ours(p)]
    return sorted(records, key=lambda r: (r["dataset"], r["split"], KIND_ORDER.get(r["kind"], 9), r["system"]))


def _bm25_ndcg(records: Sequence[dict]) -> dict[tuple[str, str], float]:
    return {(r["dataset"], r["split"]): r["metrics"]["nDCG@10"] for r in records if r["kind"] == "bm25"}


def markdown_table(records: Sequence[dict]) -> str:
    """One row per dataset and system; ``Δ BM25`` is the nDCG@10 gain over BM25 on the same split."""
    base = _bm25_ndcg(records)
    head = ["Dataset", "Split", "System", "nDCG@10", "Δ BM25", *MD_METRICS[1:], "Queries"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for r in records:
        m = r["metrics"]
        ref = base.get((r["dataset"], r["split"]))
        delta = "" if ref is None or r["kind"] == "bm25" else f"{m['nDCG@10'] - ref:+.4f}"
        cells = [r["dataset"], r["split"], r["system"], f"{m['nDCG@10']:.4f}", delta,
                 *(f"{m[k]:.4f}" for k in MD_METRICS[1:]), str(r["queries"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(records: Sequence[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({**{k: r[k] for k in ("dataset", "split", "system", "kind", "queries", "run_file")},
                         **r["metrics"]})
    return buffer.getvalue()


def write_tables(output_dir: str | Path, notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """``results.md`` and ``results.csv`` in ``output_dir`` from all its metrics files."""
    output_dir = Path(output_dir)
    records = collect(output_dir)
    md = "\n".join([MD_MARK, "", markdown_table(records), *notes]).rstrip("\n") + "\n"
    return atomic_write(output_dir / "results.md", md), atomic_write(output_dir / "results.csv", csv_table(records))
