"""`python -m llara_retrieval.reproduce` in miniature: tiny model, Cranfield split into train and test queries, a
few steps, through the real CLIs (Pyserini BM25, both trainers, BEIR evaluation, fusion). Checks the dev split and
that fine-tuning never saw a dev query, every figure of the table (mean ± sd over 2 seeds) against pytrec_eval on
the run files, every paired test and verdict against an independent computation (scipy's t-test, a numpy
randomisation test), the hybrid's dev choice against a brute force, and resuming: after a failure, with a new
seed (only its stages run) and unchanged."""
import json
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from scipy import stats

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.reproduce.pipeline import STATE, load_state
from tests.support.tiny import cranfield_texts

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

BEFORE_PRETRAIN = ("split", "bm25-dev", "bm25", "zero-shot-dev", "zero-shot-eval")
ONE_SEED = (*BEFORE_PRETRAIN, "pretrain-data", "pretrain", "pretrain-dev", "pretrain-eval", "mine-s1",
            "finetune-s1", "finetune-s1-dev", "finetune-s1-eval", "pretrain-finetune-s1", "pretrain-finetune-s1-dev",
            "pretrain-finetune-s1-eval", "hybrid")
SEED_2 = ("mine-s2", "finetune-s2", "finetune-s2-dev", "finetune-s2-eval", "pretrain-finetune-s2",
          "pretrain-finetune-s2-dev", "pretrain-finetune-s2-eval")
ROUNDS = 2000


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    texts = cranfield_texts(120)
    path = tmp_path_factory.mktemp("reproduce-text") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"sent_a": a, "sent_b": b}) + "\n" for a, b in zip(texts, texts[1:])))
    return path


@pytest.fixture(scope="module")
def cranfield_split(cranfield_dir, tmp_path_factory) -> Path:
    """Cranfield with train qrels (query ids not divisible by 3) and test qrels (the others), corpus linked."""
    root = tmp_path_factory.mktemp("cranfield-split") / "cranfield"
    (root / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (root / name).symlink_to(cranfield_dir / name)
    head, *rows = (cranfield_dir / "qrels" / "test.tsv").read_text().splitlines()
    for split, keep in (("train", lambda q: int(q) % 3 != 0), ("test", lambda q: int(q) % 3 == 0)):
        (root / "qrels" / f"{split}.tsv").write_text(
            "\n".join([head, *(r for r in rows if keep(r.split("\t")[0]))]) + "\n")
    return root


def reproduce(model, data, pairs, out, *extra):
    argv = [sys.executable, "-m", "llara_retrieval.reproduce", "--model", str(model), "--dataset", str(data),
            "--pretrain-text", str(pairs), "--output", str(out), "--cache-dir", str(out.parent / "cache"),
            "--pretrain-steps", "2", "--finetune-steps", "2", "--pretrain-batch-size", "4",
            "--finetune-batch-size", "4", "--train-group-size", "4", "--passage-max-len", "64",
            "--query-max-len", "48", "--pretrain-max-len", "48", "--pretrain-chunk-tokens", "24", "--mine-depth", "20",
            "--mine-negatives", "3", "--save-steps", "1", "--permutation-rounds", str(ROUNDS), *extra]
    return subprocess.run(argv, capture_output=True, text=True)


def finished(out) -> dict[str, str]:
    return {name: rec["finished"] + str(rec["seconds"])
            for name, rec in json.loads((out / STATE).read_text())["stages"].items()}


def read_qrels(path: Path) -> dict:
    qrels = {}
    for line in path.read_text().splitlines()[1:]:
        q, d, r = line.split("\t")
        qrels.setdefault(q, {})[d] = int(r)
    return qrels


def read_run(path: Path) -> dict:
    run = {}
    for line in path.read_text().splitlines():
        q, _, d, _, score, _ = line.split()
        run.setdefault(q, {})[d] = float(score)
    return run


def ndcg10(qrels: dict, run: dict) -> dict[str, float]:
    """Per judged query, straight from pytrec_eval (queries missing from the run score 0)."""
    judged = {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    per_query = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut_10"}).evaluate(run)
    return {q: per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in judged}


def fuse(dense: dict, sparse: dict, w: float, normalisation: str) -> dict:
    """Linear fusion by numpy: min-max (a missing document gets 0) or z-score (a missing one: the list's minimum)."""
    out = {}
    for q in set(dense) | set(sparse):
        parts = []
        for run in (dense.get(q, {}), sparse.get(q, {})):
            values = np.array(list(run.values()), dtype=float)
            if normalisation == "min-max":
                span = np.ptp(values) if run else 0.0
                scaled, missing = ((values - values.min()) / span if span > 0 else np.ones_like(values)), 0.0
            else:
                sd = values.std() if run else 0.0
                scaled = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
                missing = scaled.min() if run else 0.0
            parts.append((dict(zip(run, scaled)), missing))
        (a, miss_a), (b, miss_b) = parts
        out[q] = {d: w * a.get(d, miss_a) + (1 - w) * b.get(d, miss_b) for d in set(a) | set(b)}
    return out


def randomisation_p(a: np.ndarray, b: np.ndarray, rounds: int = 20000) -> float:
    diff = a - b
    signs = np.random.default_rng(123).choice([-1.0, 1.0], size=(rounds, len(diff)))
    null = np.abs((signs * diff).mean(axis=1))
    return (np.sum(null >= abs(diff.mean()) - 1e-12) + 1) / (rounds + 1)


def section_rows(table: str, header_start: str) -> list[list[str]]:
    """The cells of the markdown table whose header line starts with ``header_start``."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.split("|")[1:-1]])
    return rows


def test_miniature_pipeline_table_statistics_and_resume(tiny_model_dir, cranfield_split, pairs, tmp_path):
    out = tmp_path / "reproduce"
    # 1. a stage fails (no such pretraining text): a one-line error, the stages before it recorded
    failed = reproduce(tiny_model_dir, cranfield_split, tmp_path / "missing.jsonl", out, "--seeds", "1")
    assert failed.returncode == 1
    assert "llara-reproduce: error: stage pretrain-data failed" in failed.stderr.splitlines()[-1]
    before = finished(out)
    assert tuple(before) == BEFORE_PRETRAIN

    # 2. fixed and rerun with one seed: the finished stages are skipped, the rest run
    done = reproduce(tiny_model_dir, cranfield_split, pairs, out, "--seeds", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    one = finished(out)
    assert tuple(one) == ONE_SEED and all(one[s] == before[s] for s in before)
    assert "bm25: done before" in done.stderr

    # 3. a second seed: exactly its stages run (and the hybrid again if the dev choice moved to it)
    more = reproduce(tiny_model_dir, cranfield_split, pairs, out, "--seeds", "1", "2")
    assert more.returncode == 0, more.stderr[-3000:]
    state = finished(out)
    redone = {s for s in state if state[s] != one.get(s)}
    assert set(SEED_2) <= redone <= {*SEED_2, "hybrid"}

    # 4. unchanged rerun: nothing runs
    again = reproduce(tiny_model_dir, cranfield_split, pairs, out, "--seeds", "1", "2")
    assert again.returncode == 0 and finished(out) == state

    # 5. the dev split: the documented seeded draw, a partition of train, never mined for fine-tuning
    train = read_qrels(cranfield_split / "qrels" / "train.tsv")
    view = out / "data" / "split" / "cranfield"
    dev, fit = read_qrels(view / "qrels" / "dev.tsv"), read_qrels(view / "qrels" / "fit.tsv")
    judged = sorted(q for q, docs in train.items() if any(r > 0 for r in docs.values()))
    assert sorted(dev) == sorted(random.Random(13).sample(judged, round(0.1 * len(judged))))
    assert {**dev, **fit} == train and not set(dev) & set(fit)
    for seed in (1, 2):
        mined = [json.loads(line) for line in (out / "data" / f"negatives-bm25-s{seed}.jsonl").read_text().splitlines()]
        assert {r["query_id"] for r in mined} <= set(fit) and mined

    # 6. the test table: every figure is pytrec_eval's on the run files; rows 4 and 5 are mean ± sd over seeds
    runs, test_qrels = out / "runs", read_qrels(cranfield_split / "qrels" / "test.tsv")
    test_runs = {p.name.split(".")[3]: p for p in runs.glob("run.cranfield.test.*.trec")}
    per_query = {system: ndcg10(test_qrels, read_run(path)) for system, path in test_runs.items()}
    selection = json.loads((out / STATE).read_text())["selection"]
    fused = selection["system"]
    model = Path(tiny_model_dir).name
    systems = {"1": ["bm25"], "2": [model], "3": ["pretrain"], "4": ["finetune-s1", "finetune-s2"],
               "5": ["pretrain-finetune-s1", "pretrain-finetune-s2"], "6": [f"hybrid-rrf-{fused}"],
               "6b": [f"hybrid-linear-{fused}"]}
    assert set(test_runs) == {s for names in systems.values() for s in names} | {fused}  # test: once per system
    table = (out / "results.md").read_text()
    rows = {r[0]: r for r in section_rows(table, "| # | system | seeds | nDCG@10 | Recall@100 | Δ nDCG@10 vs BM25 |")}
    assert list(rows) == ["1", "2", "3", "4", "5", "6", "6b"]

    def mean(values):
        return sum(values) / len(values)

    for row, names in systems.items():
        values = [mean(list(per_query[s].values())) for s in names]
        expected = f"{statistics.fmean(values):.4f}"
        expected += f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        assert rows[row][3] == expected, row
    assert rows["4"][2] == rows["5"][2] == "2 of 2"

    # 7. every claim: Δ, both p-values, wins/losses/ties and the verdict, computed here independently
    def seed_mean(names):
        return {q: mean([per_query[s][q] for s in names]) for q in per_query["bm25"]}

    sides = {"system 5 above system 4": (systems["5"], systems["4"]),
             "system 3 above system 2": (systems["3"], systems["2"]),
             **{f"system {k} above BM25": (systems[k], ["bm25"]) for k in ("2", "3", "4", "5", "6", "6b")},
             "hybrid RRF above the dense run": (systems["6"], [fused]),
             "hybrid linear above the dense run": (systems["6b"], [fused])}
    claims = section_rows(table, "| claim |")
    assert len(claims) == len(sides)
    for text, delta, p_rand, p_t, wlt, verdict in claims:
        a_names, b_names = next(v for k, v in sides.items() if text.startswith(k))
        qids = sorted(per_query["bm25"])
        a = np.array([seed_mean(a_names)[q] for q in qids])
        b = np.array([seed_mean(b_names)[q] for q in qids])
        diff = a - b
        assert delta == f"{diff.mean():+.4f}", text
        assert wlt == f"{(diff > 1e-9).sum()} / {(diff < -1e-9).sum()} / {(np.abs(diff) <= 1e-9).sum()}", text
        differs = np.any(np.abs(diff) > 1e-9)
        t_p = stats.ttest_rel(a, b).pvalue if differs else 1.0
        assert p_t == ("<0.0001" if t_p < 1e-4 else f"{t_p:.4f}"), text
        ours = float(p_rand)
        independent = randomisation_p(a, b) if differs else 1.0
        assert abs(ours - independent) < 5 * np.sqrt(max(independent * (1 - independent), 1e-3) / ROUNDS) + 2e-3
        if p_rand != "0.0500":
            expected = ("met" if diff.mean() > 0 else "missed") if ours < 0.05 else "not significant"
            assert verdict == expected, text
        versus_bm25 = re.match(r"system (\w+) above BM25", text)
        if versus_bm25:  # the main table repeats these two figures
            assert rows[versus_bm25.group(1)][5:7] == [delta, p_rand], text

    # 8. the hybrid's run and weight: the dev maximum of linear fusion, recomputed here from the dev run files
    dev_runs = {p.name.split(".")[3]: read_run(p) for p in runs.glob("run.cranfield.dev.*.trec")}
    candidates = [model, "pretrain", *systems["4"], *systems["5"]]
    assert set(dev_runs) == {"bm25", *candidates}
    grid = {(s, w, n): mean(list(ndcg10(dev, fuse(dev_runs[s], dev_runs["bm25"], w, n)).values()))
            for s in candidates for w in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8) for n in ("min-max", "z-score")}
    best = max(grid.values())
    assert grid[(fused, selection["weight"], selection["normalisation"])] == pytest.approx(best, abs=1e-6)
    linear = json.loads((runs / f"run.cranfield.test.hybrid-linear-{fused}.metrics.json").read_text())
    assert linear["params"]["dense_weight"] == selection["weight"]
    assert linear["params"]["normalisation"] == f"{selection['normalisation']} per query"

    # 9. the rest of the report
    assert "Dev split: " in table and "| this run | (the recipe of the table) |" in table
    assert "Stage wall times" in table and all(f"| {s} |" in table for s in (*ONE_SEED, *SEED_2))
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    commands = (out / "commands.md").read_text()
    assert "python -m llara_retrieval.train finetune --model_name_or_path " + str(out / "models" / "pretrain") \
        in commands  # system 5 starts from system 3's model
    provenance = json.loads((out / "models" / "pretrain-finetune-s2" / "llara_config.json").read_text())["provenance"]
    assert provenance["stage"] == "finetune" and provenance["global_step"] == 2


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LlaraError, match="not written by llara-reproduce"):
        load_state(tmp_path)
    assert load_state(tmp_path / "new") == {"tool": "llara-reproduce", "stages": {}}
