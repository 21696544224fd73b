"""`python -m llara_retrieval.train mine`: BM25 (Pyserini) and dense (LLaRA + Faiss) hard negatives from a
BEIR folder; positives and judged documents removed, depth and count respected, output never clobbered."""
import json
from pathlib import Path

import pytest

from llara_retrieval.core.prompts import format_passage
from llara_retrieval.train.finetune import mine
from llara_retrieval.train.finetune.data import read_train_data
from tests.support.finetune import mini_beir


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return mini_beir(tmp_path_factory.mktemp("mine-beir"))


def corpus_text(beir) -> dict[str, str]:
    docs = [json.loads(line) for line in (beir / "corpus.jsonl").read_text().splitlines()]
    return {d["_id"]: format_passage(d, " ") for d in docs}


def qrels(beir) -> dict[str, set[str]]:
    out = {}
    for line in (beir / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        q, d, _ = line.split("\t")
        out.setdefault(q, set()).add(d)
    return out


def check_records(path, beir, count):
    texts, judged = corpus_text(beir), qrels(beir)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len(judged)
    for row in rows:
        assert set(row["pos_ids"]) == judged[row["query_id"]]
        assert not set(row["neg_ids"]) & judged[row["query_id"]]
        assert len(row["neg_ids"]) == count
        assert row["pos"] == [texts[d] for d in row["pos_ids"]] and row["neg"] == [texts[d] for d in row["neg_ids"]]
    read_train_data(path, group_size=count + 1)  # what mine writes, finetune reads
    return rows


@pytest.mark.jvm
def test_bm25_negatives_exclude_positives_and_follow_depth_and_count(beir, tmp_path, capsys):
    top, rand = tmp_path / "top.jsonl", tmp_path / "random.jsonl"
    assert mine.main(["--dataset", str(beir), "--output", str(top), "--depth", "15", "--num_negatives", "5",
                      "--sample", "top", "--cache_dir", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().err
    assert mine.main(["--dataset", str(beir), "--output", str(rand), "--depth", "15", "--num_negatives", "5",
                      "--seed", "1", "--cache_dir", str(tmp_path)]) == 0
    top_rows, rand_rows = check_records(top, beir, 5), check_records(rand, beir, 5)
    from llara_retrieval.pyserini.bm25 import bm25_search, build_bm25_index

    queries = {r["query_id"]: r["query"] for r in top_rows}
    run = bm25_search(build_bm25_index(beir, cache_dir=tmp_path), queries, k=15, show_progress_bar=False)
    for t, r in zip(top_rows, rand_rows):
        ranked = [d for d, _ in sorted(run[t["query_id"]].items(), key=lambda kv: (-kv[1], kv[0]))]
        pool = [d for d in ranked if d not in set(t["pos_ids"])]
        assert t["neg_ids"] == pool[:5]  # the top-ranked non-positives, in rank order
        assert set(r["neg_ids"]) <= set(pool)  # a sample of the top-15 pool
    assert any(t["neg_ids"] != r["neg_ids"] for t, r in zip(top_rows, rand_rows))


def test_dense_negatives_with_a_llara_encoder(beir, tiny_model_dir, tmp_path):
    out = tmp_path / "dense.jsonl"
    assert mine.main(["--dataset", str(beir), "--output", str(out), "--method", "dense", "--encoder",
                      str(tiny_model_dir), "--depth", "20", "--num_negatives", "3", "--cache_dir",
                      str(tmp_path / "cache"), "--device", "cpu"]) == 0
    check_records(out, beir, 3)


def test_existing_output_and_missing_split_are_errors(beir, tmp_path, capsys):
    out = tmp_path / "train.jsonl"
    out.write_text("keep me\n")
    assert mine.main(["--dataset", str(beir), "--output", str(out), "--cache_dir", str(tmp_path)]) == 1
    assert "already exists (pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me\n"
    assert mine.main(["--dataset", str(beir), "--output", str(tmp_path / "x.jsonl"), "--split", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "nosuch.tsv: missing" in err and not (tmp_path / "x.jsonl").exists()
    assert mine.main(["--dataset", str(beir), "--output", str(tmp_path / "y.jsonl"), "--method", "dense"]) == 1
    assert "--method dense needs --encoder" in capsys.readouterr().err


def test_qrels_whose_positives_are_not_in_the_corpus_are_an_error_naming_both_files(tmp_path, capsys):
    from tests.support.beir_data import write_beir

    root = write_beir(tmp_path / "ds", qrels=[("q1", "d1", 0), ("q2", "d9", 1)])  # q1 judged 0; d9 not in corpus
    out = tmp_path / "train.jsonl"
    assert mine.main(["--dataset", str(root), "--split", "test", "--output", str(out), "--cache_dir", str(tmp_path)]) == 1
    warning, error = capsys.readouterr().err.strip().splitlines()  # the load warns of d9 at its qrels line
    assert warning.startswith(f"mine: warning: {root / 'qrels' / 'test.tsv'}:3: doc 'd9'") and not out.exists()
    assert error == (f"mine: error: {root / 'qrels' / 'test.tsv'}: no judged query has a positive document in "
                     f"{root / 'corpus.jsonl'}: nothing to train on")
