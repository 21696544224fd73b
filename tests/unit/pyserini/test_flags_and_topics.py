"""Fast unit tests of the Pyserini glue: encoder detection, argv parsing, topics, run names, shards."""
from __future__ import annotations

import gzip
import json
import sys

import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.pyserini.corpus import read_shard, shard_bounds
from llara_retrieval.pyserini.hook import encoder_argument, is_llara_encoder, main_module
from llara_retrieval.pyserini.search import metrics_file_name, run_file_name
from llara_retrieval.pyserini.topics import install_topics_dir, read_topics, topics_label


def test_is_llara_encoder(tmp_path):
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "llara_config.json").write_text("{}")
    (tmp_path / "spec.json").write_text(json.dumps({"format": "llara-encoder/1"}))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    (tmp_path / "hf").mkdir()
    assert is_llara_encoder(tmp_path / "enc") and is_llara_encoder(str(tmp_path / "spec.json"))
    for name in (tmp_path / "other.json", tmp_path / "hf", "bert-base-uncased", None, ""):
        assert not is_llara_encoder(name)


def test_encoder_argument_and_main_module(monkeypatch):
    assert encoder_argument(["input", "--corpus", "c", "encoder", "--encoder", "x", "--fields", "t"]) == "x"
    assert encoder_argument(["--encoder=y"]) == "y" and encoder_argument(["--index", "i"]) is None
    monkeypatch.setattr(sys, "argv", ["-m", "--index", "i"])
    monkeypatch.setattr(sys, "orig_argv", ["python", "-X", "utf8", "-m", "pyserini.search.faiss", "--index", "i"])
    assert main_module() == "pyserini.search.faiss"
    monkeypatch.setattr(sys, "argv", ["/path/__main__.py"])
    assert main_module() is None


def test_topics_files_and_labels(tmp_path):
    tsv = tmp_path / "topics.my-set.test.tsv.gz"
    with gzip.open(tsv, "wt") as handle:
        handle.write("1\tfirst query\n2\tsecond\n")
    assert read_topics(tsv) == {"1": "first query", "2": "second"}
    assert topics_label(tsv) == "my-set.test"
    folder = tmp_path / "cranfield"
    folder.mkdir()
    (folder / "queries.jsonl").write_text('{"_id": "7", "text": "q"}\n\n{"_id": 8, "text": "r"}\n')
    assert read_topics(folder / "queries.jsonl") == {"7": "q", "8": "r"}
    assert topics_label(folder / "queries.jsonl") == "cranfield-queries"
    assert topics_label("beir-v1.0.0-scifact-test") == "beir-v1.0.0-scifact-test"
    (folder / "bad.tsv").write_text("1\tok\nno tab here\n")
    with pytest.raises(LlaraError, match=r"bad\.tsv:2: expected 'qid<TAB>query'"):
        read_topics(folder / "bad.tsv")
    with pytest.raises(LlaraError, match="no such topics file"):
        read_topics(tmp_path / "missing" / "q.tsv")


def test_install_topics_dir_copies_only_missing(tmp_path):
    src, cache = tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    (src / "topics.a.tsv").write_text("new")
    (src / "qrels.a.txt").write_text("new")
    (src / "README").write_text("not a topic file")
    cache.mkdir()
    (cache / "qrels.a.txt").write_text("user's own")
    assert [p.name for p in install_topics_dir(src, cache)] == ["topics.a.tsv"]
    assert (cache / "qrels.a.txt").read_text() == "user's own" and not (cache / "README").exists()


def test_run_names():
    run = run_file_name("encoders/llara-gemma3-270m.json", "beir-v1.0.0-scifact-test")
    assert str(run) == "runs/run.llara-gemma3-270m.beir-v1.0.0-scifact-test.trec"
    assert run_file_name("BAAI/LLARA-passage", "x", "out").name == "run.BAAI-LLARA-passage.x.trec"
    assert metrics_file_name(run).name == run.name.replace(".trec", ".metrics.json")
    assert metrics_file_name("out/x.txt").name == "x.txt.metrics.json"


def test_shards_match_pyserini_split(tmp_path):
    assert [shard_bounds(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(LlaraError, match="shard-id"):
        shard_bounds(10, 3, 3)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "contents": f"t{i}\nx{i}"}) + "\n" for i in range(5)))
    shard = read_shard(corpus, ["title", "text"], shard_id=1, shard_num=2)
    assert shard.ids == ["2", "3", "4"] and shard.fields["title"] == ["t2", "t3", "t4"]


def test_pyserini_only_flags_are_refused_or_ignored(tmp_path, capsys):
    from llara_retrieval.pyserini import search

    base = ["--index", str(tmp_path / "none"), "--topics", "t.tsv", "--encoder", "x.json"]
    assert search.main(base + ["--prf-depth", "3"]) == 1
    assert capsys.readouterr().err.strip() == \
        "llara_retrieval.search: error: --prf-depth is not supported with a LLaRA encoder"
    assert search.main(base + ["--pooling", "mean", "--l2-norm", "--encoder-class", "auto"]) == 1
    err = capsys.readouterr().err
    assert "ignoring --pooling, --l2-norm" in err and "--encoder-class auto ignored" in err
    assert err.strip().splitlines()[-1].endswith("not a Faiss index dir (no 'index' file)")
