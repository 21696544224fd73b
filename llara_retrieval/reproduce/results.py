"""The figures of the reproduction report, read back from what the stages wrote: each row's test metrics
(mean ± sd over seeds, from the metrics JSON), the paired tests of the claims (per-query nDCG@10 from the
run files) and the dev figures that every choice was made on."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

from llara_retrieval.beir.run import metrics_path, run_path
from llara_retrieval.reproduce.stages import (
    FINETUNE,
    PRETRAIN,
    PRETRAIN_FINETUNE,
    ReproduceConfig,
    dataset_name,
    runs_dir,
    seeded,
)
from llara_retrieval.retrieval.data import qrels_file, read_queries, resolve_dataset
from llara_retrieval.retrieval.runs import encoder_name, read_qrels, read_run
from llara_retrieval.retrieval.significance import PairedTest, mean_per_query, paired_test, per_query, verdict

METRICS = ("nDCG@10", "Recall@100")
ROWS = (
    ("1", "BM25 (Pyserini, k1=0.9 b=0.4)"),
    ("2", "base + LLaRA prompts, zero-shot"),
    ("3", "base → pretrain (EBAE + EBAR), zero-shot"),
    ("4", "base → finetune"),
    ("5", "base → pretrain → finetune"),
    ("6", "hybrid RRF (k=60): BM25 + the dense run chosen on dev"),
    ("6b", "hybrid linear (normalisation and weight chosen on dev): BM25 + the same dense run"),
)


def row_systems(config: ReproduceConfig, state: dict) -> dict[str, list[str]]:
    """Row -> run system names (one per seed for rows 4 and 5, none for a row left out of ``--systems``); rows 6
    and 6b once the hybrid stage ran."""
    names = {"1": ["bm25"], "2": [encoder_name(config.model)], "3": [PRETRAIN],
             "4": [seeded(FINETUNE, s) for s in config.seeds] if "4" in config.systems else [],
             "5": [seeded(PRETRAIN_FINETUNE, s) for s in config.seeds] if "5" in config.systems else [],
             "6": [], "6b": []}
    hybrid = state["stages"].get("hybrid", {}).get("system")
    if hybrid:
        names["6"], names["6b"] = [hybrid], [hybrid.replace("hybrid-rrf-", "hybrid-linear-", 1)]
    return names


def seed_of(system: str) -> int | None:
    """The seed of a seeded system name (``finetune-s42`` -> 42)."""
    head, _, tail = system.rpartition("-s")
    return int(tail) if head and tail.isdigit() else None


def read_record(config: ReproduceConfig, split: str, system: str) -> dict | None:
    """The metrics JSON ``llara-beir`` wrote for ``system`` on ``split`` (dev: the view), ``None`` if not yet."""
    path = metrics_path(run_path(runs_dir(config), dataset_name(config), split, system))
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@dataclass
class Row:
    """One table row and what finished of it."""

    row: str
    label: str
    systems: list[str]
    finished: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per finished system

    def mean(self, metric: str) -> float | None:
        values = self.values.get(metric)
        return statistics.fmean(values) if values else None

    def sd(self, metric: str) -> float | None:
        """Sample standard deviation over seeds (``None`` below 2 finished seeds)."""
        values = self.values.get(metric) or []
        return statistics.stdev(values) if len(values) >= 2 else None


def collect_rows(config: ReproduceConfig, state: dict, split: str | None = None) -> list[Row]:
    """Every row with the figures of its finished systems on ``split`` (default: the eval split)."""
    split = split or config.eval_split
    rows = []
    for (key, label), systems in zip(ROWS, row_systems(config, state).values()):
        row = Row(key, label, systems)
        for system in systems:
            record = read_record(config, split, system)
            if record:
                row.finished.append(system)
                for metric in METRICS:
                    row.values.setdefault(metric, []).append(record["metrics"][metric])
        rows.append(row)
    return rows


class TestScores:
    """Per-query test nDCG@10 of systems, read from their run files (each file scored once)."""

    def __init__(self, config: ReproduceConfig):
        self.config = config
        self._qrels: dict | None = None
        self._cache: dict[str, dict[str, float]] = {}

    def qrels(self) -> dict:
        """The eval split's judgements of the queries in ``queries.jsonl`` (the queries ``llara-beir`` scores)."""
        if self._qrels is None:
            root = resolve_dataset(self.config.dataset, self.config.cache_dir)
            queries = read_queries(root / "queries.jsonl")
            qrels = read_qrels(qrels_file(root, self.config.eval_split))
            self._qrels = {q: docs for q, docs in qrels.items() if q in queries}
        return self._qrels

    def of(self, systems: list[str]) -> dict[str, float]:
        """Per-query nDCG@10 averaged over ``systems`` (the seeds of one system)."""
        for system in systems:
            if system not in self._cache:
                record = read_record(self.config, self.config.eval_split, system)
                run = read_run(runs_dir(self.config) / record["run_file"])
                self._cache[system] = per_query(self.qrels(), run)
        return mean_per_query([self._cache[s] for s in systems])


@dataclass
class Claim:
    """A claim of the paper or of the issue, as a paired test of A's systems against B's."""

    text: str
    row_a: str
    row_b: str  # a row, or "fused" for the dense run the hybrid fused
    a: list[str]
    b: list[str]
    test: PairedTest

    @property
    def verdict(self) -> str:
        return verdict(self.test)

    @property
    def seeds(self) -> int:
        return len(self.a)


def claims(config: ReproduceConfig, rows: list[Row], scores: TestScores) -> list[Claim]:
    """The paired tests of the table's claims on test nDCG@10 per query. A seeded row counts with the mean of
    its seeds per query; row 5 is compared with row 4 on the seeds both finished, so each seed's pair shares
    its negatives and data order."""
    by_row = {r.row: r for r in rows}
    fused = by_row["6"].finished[0].removeprefix("hybrid-rrf-") if by_row["6"].finished else None
    common = sorted({seed_of(s) for s in by_row["4"].finished} & {seed_of(s) for s in by_row["5"].finished})
    checks = [("system 5 above system 4 (pretraining helps fine-tuning)", "5", "4",
               [seeded(PRETRAIN_FINETUNE, s) for s in common], [seeded(FINETUNE, s) for s in common]),
              ("system 3 above system 2 (pretraining helps zero-shot)", "3", "2", by_row["3"].finished,
               by_row["2"].finished)]
    checks += [(f"system {k} above BM25", k, "1", by_row[k].finished, by_row["1"].finished)
               for k in ("2", "3", "4", "5", "6", "6b")]
    if fused:
        checks += [(f"hybrid RRF above the dense run it fuses ({fused})", "6", "fused", by_row["6"].finished, [fused]),
                   (f"hybrid linear above the dense run it fuses ({fused})", "6b", "fused", by_row["6b"].finished,
                    [fused])]
    out = []
    for text, row_a, row_b, a, b in checks:
        if a and b:
            test = paired_test(scores.of(a), scores.of(b), "nDCG@10", config.permutation_rounds, config.stats_seed)
            out.append(Claim(text, row_a, row_b, list(a), list(b), test))
    return out
