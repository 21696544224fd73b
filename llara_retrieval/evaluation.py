"""TREC run files, qrels and metrics (pytrec_eval): shared by the Pyserini, BEIR and training paths."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Mapping

from .errors import LlaraError

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]

METRICS = {  # our name -> pytrec_eval measure
    "nDCG@1": "ndcg_cut_1", "nDCG@3": "ndcg_cut_3", "nDCG@5": "ndcg_cut_5", "nDCG@10": "ndcg_cut_10",
    "nDCG@100": "ndcg_cut_100", "Recall@10": "recall_10", "Recall@100": "recall_100",
    "Recall@1000": "recall_1000", "MAP@10": "map_cut_10", "MRR@10": "recip_rank",
}


def atomic_write(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path`` and rename it into place (no half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_qrels(path: str | Path) -> Qrels:
    """Qrels in BEIR TSV (``query-id corpus-id score`` with header) or TREC (``qid 0 docid rel``) format."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.split()
            if not parts or (lineno == 1 and parts[0] == "query-id"):
                continue
            if len(parts) == 3:
                qid, docid, rel = parts
            elif len(parts) == 4:
                qid, _, docid, rel = parts
            else:
                raise LlaraError(f"{path}:{lineno}: expected 3 (BEIR) or 4 (TREC) columns, got {len(parts)}")
            try:
                qrels.setdefault(qid, {})[docid] = int(float(rel))
            except ValueError:
                raise LlaraError(f"{path}:{lineno}: relevance {rel!r} is not a number") from None
    if not qrels:
        raise LlaraError(f"{path}: no judgements")
    return qrels


def read_run(path: str | Path) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``)."""
    run: Run = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise LlaraError(f"{path}:{lineno}: a TREC run line has 6 columns, got {len(parts)}")
            try:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
            except ValueError:
                raise LlaraError(f"{path}:{lineno}: score {parts[4]!r} is not a number") from None
    return run


def format_run(run: Mapping[str, Mapping[str, float]], tag: str, top_k: int | None = None) -> str:
    """TREC run text: per query, documents by descending score (ties by doc id), ranks from 1."""
    lines = []
    for qid in sorted(run):
        ranked = sorted(run[qid].items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        lines.extend(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}" for rank, (docid, score) in enumerate(ranked, 1))
    return "\n".join(lines) + ("\n" if lines else "")


def write_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str, top_k: int | None = None) -> Path:
    return atomic_write(path, format_run(run, tag, top_k))


def evaluate(qrels: Qrels, run: Run, metrics: Mapping[str, str] = METRICS) -> dict[str, float]:
    """Mean of each metric over the judged queries (queries missing from the run count as 0)."""
    import pytrec_eval

    judged = {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, set(metrics.values()))
    per_query = evaluator.evaluate({q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged})
    n = max(len(judged), 1)
    return {name: round(sum(per_query.get(q, {}).get(measure, 0.0) for q in judged) / n, 6)
            for name, measure in metrics.items()}


def write_metrics(metrics: Mapping, path: str | Path) -> Path:
    return atomic_write(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
