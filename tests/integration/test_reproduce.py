"""`python -m llara_retrieval.reproduce` in miniature: tiny model, Cranfield, a few steps, through the real CLIs
(Pyserini BM25, both trainers, BEIR evaluation, fusion). Checks the table against pytrec_eval on the run
files, the choice of the hybrid's dense run, and resuming: after a failure, unchanged, and with a new knob."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytrec_eval

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.reproduce.pipeline import STATE, load_state
from tests.support.tiny import cranfield_texts

pytestmark = [pytest.mark.jvm, pytest.mark.slow]

DENSE = ("zero-shot", "pretrain-eval", "finetune-eval", "pretrain-finetune-eval")
ALL = ("bm25", "zero-shot", "pretrain-data", "pretrain", "pretrain-eval", "mine", "finetune", "finetune-eval",
       "pretrain-finetune", "pretrain-finetune-eval", "hybrid")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    texts = cranfield_texts(120)
    path = tmp_path_factory.mktemp("reproduce-text") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"sent_a": a, "sent_b": b}) + "\n" for a, b in zip(texts, texts[1:])))
    return path


def reproduce(model, data, pairs, out, *extra):
    argv = [sys.executable, "-m", "llara_retrieval.reproduce", "--model", str(model), "--dataset", str(data),
            "--pretrain-text", str(pairs), "--output", str(out), "--cache-dir", str(out.parent / "cache"),
            "--pretrain-steps", "2", "--finetune-steps", "2", "--pretrain-batch-size", "4",
            "--finetune-batch-size", "4", "--passage-max-len", "64", "--query-max-len", "48",
            "--pretrain-max-len", "48", "--pretrain-chunk-tokens", "24", "--mine-depth", "20",
            "--mine-negatives", "3", "--save-steps", "1", *extra]
    return subprocess.run(argv, capture_output=True, text=True)


def finished(out) -> dict[str, str]:
    return {name: rec["finished"] + str(rec["seconds"])
            for name, rec in json.loads((out / STATE).read_text())["stages"].items()}


def pytrec_ndcg10(qrels_tsv: Path, run_file: Path) -> float:
    """nDCG@10 straight from the qrels TSV and the TREC file, without the package's own evaluation code."""
    qrels, run = {}, {}
    for line in qrels_tsv.read_text().splitlines()[1:]:
        q, d, r = line.split("\t")
        qrels.setdefault(q, {})[d] = int(r)
    for line in run_file.read_text().splitlines():
        q, _, d, _, score, _ = line.split()
        run.setdefault(q, {})[d] = float(score)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    judged = [q for q in qrels if any(r > 0 for r in qrels[q].values())]
    return sum(per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in judged) / len(judged)


def test_miniature_pipeline_table_and_resume(tiny_model_dir, cranfield_dir, pairs, tmp_path):
    out = tmp_path / "reproduce"
    # 1. a stage fails (no such qrels split to mine): a one-line error, earlier stages recorded
    failed = reproduce(tiny_model_dir, cranfield_dir, pairs, out, "--train-split", "nosuch")
    assert failed.returncode == 1
    assert "llara-reproduce: error: stage mine failed" in failed.stderr.splitlines()[-1]
    before = finished(out)
    assert tuple(before) == ALL[:5]

    # 2. fixed and rerun: the finished stages are skipped, the rest run (Cranfield has only test qrels)
    done = reproduce(tiny_model_dir, cranfield_dir, pairs, out, "--train-split", "test")
    assert done.returncode == 0, done.stderr[-3000:]
    state = finished(out)
    assert tuple(state) == ALL and all(state[s] == before[s] for s in before)
    assert "bm25: done before" in done.stderr

    # 3. the table: every row's figures are pytrec_eval's on the run file, deltas are differences
    runs, qrels = out / "runs", cranfield_dir / "qrels" / "test.tsv"
    records = {json.loads(p.read_text())["system"]: json.loads(p.read_text()) for p in runs.glob("*.metrics.json")}
    names = {"zero-shot": Path(tiny_model_dir).name, "pretrain-eval": "pretrain", "finetune-eval": "finetune",
             "pretrain-finetune-eval": "pretrain-finetune"}
    best = max(DENSE, key=lambda s: records[names[s]]["metrics"]["nDCG@10"])
    systems = ["bm25", *names.values(), f"hybrid-rrf-{names[best]}", f"hybrid-linear-{names[best]}"]
    assert set(records) == set(systems)  # the hybrid fused the best dense run, and only that one
    table = (out / "results.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in table.splitlines() if line.startswith("| ") and not line.startswith("| #")}
    assert list(rows) == ["1", "2", "3", "4", "5", "6", "6b"]
    for row, system in zip(rows, systems):
        ndcg = pytrec_ndcg10(qrels, runs / records[system]["run_file"])
        assert abs(ndcg - records[system]["metrics"]["nDCG@10"]) < 1e-6  # the JSON keeps 6 decimals
        assert rows[row][1] == f"{ndcg:.4f}"
        assert rows[row][2] == f"{records[system]['metrics']['Recall@100']:.4f}"
    for row, base in (("3", "2"), ("5", "4")):
        delta = (records[systems[int(row) - 1]]["metrics"]["nDCG@10"]
                 - records[systems[int(base) - 1]]["metrics"]["nDCG@10"])
        assert rows[row][3] == f"{delta:+.4f}"
    targets = [line for line in table.splitlines() if line.startswith("- ") and " vs " in line]
    assert len(targets) == 7
    for line in targets:  # every verdict follows from the two figures it quotes
        a, b = map(float, re.findall(r"(\d\.\d{4}) vs (\d\.\d{4})", line)[0])
        assert a == b or line.endswith(", met") == (a > b)  # equal when rounded: either verdict
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    commands = (out / "commands.md").read_text()
    assert all(f"## {stage} (" in commands for stage in ALL)
    assert "python -m llara_retrieval.train finetune --model_name_or_path " + str(out / "models" / "pretrain") \
        in commands  # system 5 starts from system 3's model
    provenance = json.loads((out / "models" / "pretrain-finetune" / "llara_config.json").read_text())["provenance"]
    assert provenance["stage"] == "finetune" and provenance["global_step"] == 2

    # 4. unchanged rerun: nothing runs again
    again = reproduce(tiny_model_dir, cranfield_dir, pairs, out, "--train-split", "test")
    assert again.returncode == 0 and finished(out) == state

    # 5. a fine-tuning knob changes: exactly the stages that depend on it run again, from scratch
    (out / "models" / "finetune" / "stale-marker").write_text("from the 2-step run")
    more = reproduce(tiny_model_dir, cranfield_dir, pairs, out, "--train-split", "test", "--finetune-steps", "3")
    assert more.returncode == 0, more.stderr[-3000:]
    after = finished(out)
    redone = {s for s in ALL if after[s] != state[s]}
    assert redone == {"finetune", "finetune-eval", "pretrain-finetune", "pretrain-finetune-eval", "hybrid"}
    assert not (out / "models" / "finetune" / "stale-marker").exists()  # the old run's folder (checkpoints) went
    provenance = json.loads((out / "models" / "finetune" / "llara_config.json").read_text())["provenance"]
    assert provenance["global_step"] == 3


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LlaraError, match="not written by llara-reproduce"):
        load_state(tmp_path)
    assert load_state(tmp_path / "new") == {"tool": "llara-reproduce", "stages": {}}
