"""Small BEIR folders written on the fly, for the BEIR, BM25 and bad-input tests."""
from __future__ import annotations

import json
from pathlib import Path

DOCS = {"d1": ("Wing lift", "lift of a wing in a propeller slipstream"),
        "d2": ("Shock waves", "hypersonic shock wave and boundary layer"),
        "d3": ("Heat transfer", "heat transfer in laminar boundary layers"),
        "d4": ("Buckling", "buckling of thin cylindrical shells under pressure")}
QUERIES = {"q1": "wing lift slipstream", "q2": "shock wave boundary layer", "q3": "shell buckling"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d3", 1), ("q3", "d4", 1)]


def write_beir(root: Path, docs=DOCS, queries=QUERIES, qrels=QRELS, extra_corpus_lines=(), qrels_text=None) -> Path:
    """A BEIR folder; ``extra_corpus_lines`` are appended raw, ``qrels_text`` replaces the qrels file."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"_id": d, "title": t, "text": x}) for d, (t, x) in docs.items()] + list(extra_corpus_lines)
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    text = qrels_text if qrels_text is not None else "query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, d, r in qrels)
    (root / "qrels" / "test.tsv").write_text(text)
    return root
