"""Bad BEIR input: one-line errors/warnings naming file and line, and nothing written under the output."""
import json

import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.beir.__main__ import main
from llara_retrieval.retrieval import data
from llara_retrieval.retrieval.data import LlaraWarning, load_dataset
from tests.support.beir_data import write_beir


def test_a_good_folder_keeps_only_the_judged_queries(tmp_path):
    root = write_beir(tmp_path / "toy", queries={"q1": "a", "q2": "b", "q3": "c", "q9": "unjudged"})
    ds = load_dataset(root)
    assert ds.name == "toy" and len(ds.corpus) == 4 and set(ds.queries) == {"q1", "q2", "q3"}
    assert ds.qrels["q2"] == {"d2": 2, "d3": 1} and len(ds.corpus_sha256) == 64


@pytest.mark.parametrize("case, pattern", [
    ("no-corpus", r"corpus\.jsonl: missing \(a BEIR folder holds"),
    ("bad-json", r"corpus\.jsonl:5: invalid JSON"),
    ("no-text", r"corpus\.jsonl:5: field 'text' must be a string, got a list"),
    ("bad-qrels-row", r"qrels/test\.tsv:3: expected 3 \(BEIR\) or 4 \(TREC\) columns"),
    ("bad-relevance", r"qrels/test\.tsv:2: relevance 'yes' is not a number"),
    ("no-judged-query", r"qrels/test\.tsv: none of its 1 queries is in .*queries\.jsonl"),
    ("no-split", r"qrels/dev\.tsv: missing \(split 'dev'; splits found: test\)"),
])
def test_bad_folders_fail_in_one_line_naming_file_and_line(tmp_path, case, pattern):
    root = write_beir(tmp_path / "ds")
    split = "dev" if case == "no-split" else "test"
    if case == "no-corpus":
        (root / "corpus.jsonl").unlink()
    elif case == "bad-json":
        write_beir(root, extra_corpus_lines=['{"_id": "d9", "text": '])
    elif case == "no-text":
        write_beir(root, extra_corpus_lines=[json.dumps({"_id": "d9", "text": ["x"]})])
    elif case == "bad-qrels-row":
        write_beir(root, qrels_text="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2 d2\n")
    elif case == "bad-relevance":
        write_beir(root, qrels_text="query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    elif case == "no-judged-query":
        write_beir(root, qrels=[("q7", "d1", 1)])
    with pytest.raises(LlaraError, match=pattern) as info:
        load_dataset(root, split)
    assert "\n" not in str(info.value)


def test_unknown_queries_and_docs_in_qrels_are_warnings_with_line(tmp_path):
    root = write_beir(tmp_path / "ds", qrels=[("q1", "d1", 1), ("q7", "d2", 1), ("q2", "d99", 1)])
    with pytest.warns(LlaraWarning) as caught:
        ds = load_dataset(root)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{root / 'qrels' / 'test.tsv'}:3: query 'q7' is not in queries.jsonl") for m in messages)
    assert any(m.startswith(f"{root / 'qrels' / 'test.tsv'}:4: doc 'd99' is not in corpus.jsonl") for m in messages)
    assert set(ds.qrels) == {"q1", "q2"}


def test_dataset_names_offline_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "BEIR_URL", "http://127.0.0.1:9/{name}.zip")  # nothing listens: like no network
    with pytest.raises(LlaraError, match=r"cannot download BEIR dataset 'scifact' .*pass the path of a BEIR folder"):
        load_dataset("scifact", cache_dir=tmp_path)
    assert not any((tmp_path / "beir").iterdir())  # no half-downloaded dataset left
    with pytest.raises(LlaraError, match="not a folder and not a BEIR dataset name"):
        load_dataset("no-such-dataset", cache_dir=tmp_path)
    with pytest.raises(LlaraError, match="no such folder"):
        load_dataset(str(tmp_path / "missing"), cache_dir=tmp_path)


@pytest.mark.jvm
def test_cli_bad_input_exits_nonzero_with_one_line_and_writes_nothing(tmp_path, capsys):
    good = write_beir(tmp_path / "good")
    bad = write_beir(tmp_path / "bad", qrels_text="query-id\tcorpus-id\tscore\nq1\td1\n")
    out = tmp_path / "runs"
    code = main(["--dataset", str(good), "--dataset", str(bad), "--bm25", "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == f"llara-beir: error: {bad / 'qrels' / 'test.tsv'}:2: expected 3 (BEIR) or 4 (TREC) columns, got 2"
    assert not out.exists()


@pytest.mark.jvm
def test_cli_warns_in_one_line_and_needs_something_to_run(tmp_path, capsys):
    root = write_beir(tmp_path / "dup", extra_corpus_lines=[json.dumps({"_id": "d2", "text": "again"})])
    assert main(["--dataset", str(root), "--output", str(tmp_path / "runs")]) == 1
    assert capsys.readouterr().err.strip() == "llara-beir: error: nothing to run: pass an encoder and/or ask for BM25"
    assert not (tmp_path / "runs").exists()
    main(["--dataset", str(root), "--bm25", "--output", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "c"),
          "--quiet", "--top-k", "10"])
    warning_lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("llara-beir: warning")]
    assert warning_lines == [f"llara-beir: warning: {root / 'corpus.jsonl'}:5: duplicate doc id 'd2' "
                             "(first at line 2); kept the first record (1 duplicate(s) in all)"]


@pytest.mark.jvm
def test_cli_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    root = write_beir(tmp_path / "toy")
    out = tmp_path / "runs"
    out.mkdir()
    (out / "run.toy.test.bm25.trec").write_text("my own run\n")
    assert main(["--dataset", str(root), "--bm25", "--output", str(out), "--quiet"]) == 1
    assert "run.toy.test.bm25.trec: exists and was not written by llara-beir" in capsys.readouterr().err
    assert (out / "run.toy.test.bm25.trec").read_text() == "my own run\n"
    assert sorted(p.name for p in out.iterdir()) == ["run.toy.test.bm25.trec"]


def test_a_dataset_name_is_downloaded_once_into_the_cache(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading
    import zipfile

    source = write_beir(tmp_path / "src" / "toyset")
    (tmp_path / "serve").mkdir()
    with zipfile.ZipFile(tmp_path / "serve" / "scifact.zip", "w") as z:
        for path in source.rglob("*"):
            z.write(path, path.relative_to(source.parent))  # BEIR zips hold one top folder
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "serve"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(data, "BEIR_URL", f"http://127.0.0.1:{server.server_address[1]}/{{name}}.zip")
        ds = load_dataset("scifact", cache_dir=tmp_path / "cache")
    finally:
        server.shutdown()
    assert ds.root == tmp_path / "cache" / "beir" / "scifact" and len(ds.corpus) == 4
    assert sorted(p.name for p in (tmp_path / "cache" / "beir").iterdir()) == ["scifact"]
    assert load_dataset("scifact", cache_dir=tmp_path / "cache").corpus == ds.corpus  # served from the cache
