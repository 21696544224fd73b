"""The dev split: a seeded partition of the train queries, written beside the dataset (never in it), that
``load_dataset`` reads like any BEIR folder and that shares the dataset's caches (same name and corpus)."""
import json
import os
import random

import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.reproduce.split import main
from llara_retrieval.retrieval.data import load_dataset
from llara_retrieval.retrieval.runs import read_qrels
from llara_retrieval.retrieval.splits import DEV, FIT, carve_dev_split, choose_dev_queries
from tests.support.beir_data import write_beir

TRAIN = [(f"t{i:02d}", f"d{1 + i % 4}", 1 + i % 2) for i in range(20)] + [("t05", "d3", 0), ("t20", "d1", 0)]


@pytest.fixture
def dataset(tmp_path):
    root = write_beir(tmp_path / "toy", queries={f"t{i:02d}": f"query {i}" for i in range(21)})
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, d, r in TRAIN))
    return root


def snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def test_dev_and_fit_partition_the_train_queries(dataset, tmp_path):
    before = snapshot(dataset)
    split = carve_dev_split(dataset, tmp_path / "view" / "toy", "train", fraction=0.25, seed=3)
    assert snapshot(dataset) == before  # the user's folder is only read
    judged = sorted(f"t{i:02d}" for i in range(20))  # t20 has no positive: never a dev query
    assert split.dev == sorted(random.Random(3).sample(judged, 5))
    dev = read_qrels(split.root / "qrels" / f"{DEV}.tsv")
    fit = read_qrels(split.root / "qrels" / f"{FIT}.tsv")
    assert sorted(dev) == split.dev and set(fit) == set(split.fit) and not set(dev) & set(fit)
    original = read_qrels(dataset / "qrels" / "train.tsv")
    assert {**dev, **fit} == original  # every judgement kept, once
    record = json.loads((split.root / "split.json").read_text())
    assert record["dev"] == split.dev and (record["dev_queries"], record["fit_queries"]) == (5, 16)
    view = load_dataset(split.root, DEV)
    source = load_dataset(dataset, "train")
    assert view.name == "toy" and view.corpus_sha256 == source.corpus_sha256 and set(view.queries) == set(split.dev)


def test_the_draw_is_seeded(dataset, tmp_path):
    qrels = read_qrels(dataset / "qrels" / "train.tsv")
    assert choose_dev_queries(qrels, 0.25, 3) == choose_dev_queries(qrels, 0.25, 3)
    assert choose_dev_queries(qrels, 0.25, 3) != choose_dev_queries(qrels, 0.25, 4)
    assert len(choose_dev_queries(qrels, 0.01, 3)) == 1 and len(choose_dev_queries(qrels, 0.99, 3)) == 19


def test_bad_requests_fail_in_one_line(dataset, tmp_path, capsys):
    with pytest.raises(LlaraError, match="never in it"):
        carve_dev_split(dataset, dataset, "train")
    with pytest.raises(LlaraError, match=r"qrels/nosuch\.tsv: missing"):
        carve_dev_split(dataset, tmp_path / "v", "nosuch")
    with pytest.raises(LlaraError, match=r"fraction must be in \(0, 1\)"):
        carve_dev_split(dataset, tmp_path / "v", "train", fraction=1.0)
    assert main(["--dataset", str(dataset), "--split", "nosuch", "--output", str(tmp_path / "v")]) == 1
    assert capsys.readouterr().err.startswith("llara-reproduce split: error: ")
    assert not (tmp_path / "v").exists()


def test_cli_replaces_an_earlier_view(dataset, tmp_path):
    out = tmp_path / "view" / "toy"
    assert main(["--dataset", str(dataset), "--split", "train", "--output", str(out), "--seed", "1"]) == 0
    first = (out / "qrels" / "dev.tsv").read_text()
    assert main(["--dataset", str(dataset), "--split", "train", "--output", str(out), "--seed", "2"]) == 0
    assert (out / "qrels" / "dev.tsv").read_text() != first
    assert os.path.samefile(out / "corpus.jsonl", dataset / "corpus.jsonl")
