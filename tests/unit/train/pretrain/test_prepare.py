"""prepare: running text -> reference pretraining JSONL, chunked by tokens."""
import json

import pytest

from llara_retrieval.train.pretrain import prepare
from llara_retrieval.train.pretrain.prepare import Chunker, load_tokenizer
from tests.support.tiny import cranfield_texts


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_paragraphs_are_chunked_by_tokens_within_groups(tmp_path, tiny_model_dir, cranfield_dir):
    texts = cranfield_texts(6)
    rows = [{"article": "A", "text": texts[0]}, {"article": "A", "text": texts[1]},
            {"article": "B", "text": texts[2]}]
    src = write_jsonl(tmp_path / "para.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert prepare.main(["--input", str(src), "--output", str(out), "--tokenizer", str(tiny_model_dir),
                         "--chunk_tokens", "20"]) == 0
    recs = read_jsonl(out)
    tok = load_tokenizer(str(tiny_model_dir))
    assert all(len(tok(r["input"], add_special_tokens=False)["input_ids"]) <= 21 for r in recs)
    assert all(r["input"] == r["output_summarize"] for r in recs)
    chunker = Chunker(tok, 20)
    group_a = chunker.chunks(texts[0].strip() + " " + texts[1].strip())
    group_b = chunker.chunks(texts[2])
    assert [r["input"] for r in recs] == group_a + group_b
    assert [r["output_predict"] for r in recs] == group_a[1:] + [""] + group_b[1:] + [""]


def test_sentence_pairs_and_errors(tmp_path, tiny_model_dir):
    src = write_jsonl(tmp_path / "pairs.jsonl", [{"sent_a": "first sentence .", "sent_b": "second one ."}])
    out = tmp_path / "out.jsonl"
    args = ["--input", str(src), "--output", str(out), "--tokenizer", str(tiny_model_dir)]
    assert prepare.main(args) == 0
    assert read_jsonl(out) == [{"input": "first sentence .", "output_summarize": "first sentence .",
                                "output_predict": "second one ."}]
    assert prepare.main(args) == 1  # never overwrite unasked
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"nope": 1}\n', encoding="utf-8")
    with pytest.raises(SystemExit):
        prepare.main([])
    assert prepare.main(["--input", str(bad), "--output", str(tmp_path / "x.jsonl"),
                         "--tokenizer", str(tiny_model_dir)]) == 1
    assert not (tmp_path / "x.jsonl").exists() and not list(tmp_path.glob(".x.jsonl*"))


def test_bad_line_names_file_and_line(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    assert prepare.main(["--input", str(bad), "--output", str(tmp_path / "x.jsonl"),
                         "--tokenizer", str(tiny_model_dir)]) == 1
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err
