"""Fine-tuning data: bad records fail at load time with file:line, groups are seeded per epoch,
over-long queries are truncated (prompt kept) and reported."""
import json

import pytest

from llara_retrieval import LlaraError
from llara_retrieval._utils.errors import LlaraWarning
from llara_retrieval.train.finetune import train as finetune
from llara_retrieval.train.finetune.data import GroupDataset, read_train_data, report_truncation
from tests.support.finetune import tiny_contrastive


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}


@pytest.mark.parametrize("row, message", [
    ({"query": "q", "neg": ["n"]}, r":2: 'pos' must be a non-empty list of passages \(the record has none\)"),
    ({"query": "q", "pos": [], "neg": ["n"]}, r":2: 'pos' must be a non-empty list"),
    ({"pos": ["p"], "neg": ["n"]}, r":2: 'query' must be a non-empty string"),
    ({"query": "q", "pos": ["p"], "neg": []}, r":2: 'neg' is empty but --train_group_size 3 needs 2 negatives"),
    ({"query": "q", "pos": [3], "neg": ["n"]}, r":2: a passage must be a string"),
    ('{"query": "q", "pos": ["p"]', r":2: invalid JSON"),
])
def test_bad_records_name_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "train.jsonl", [GOOD, row])
    with pytest.raises(LlaraError, match=str(path).replace(".", r"\.") + message):
        read_train_data(path, group_size=3)


def test_empty_negatives_are_fine_without_hard_negatives(tmp_path):
    path = write(tmp_path / "train.jsonl", [{"query": "q", "pos": [{"title": "T", "text": "x"}]}])
    (record,) = read_train_data(path, group_size=1)
    assert record.pos == ("T x",) and record.neg == ()
    assert GroupDataset([record], 1)[0] == {"query": "q", "passages": ["T x"]}


def test_groups_are_seeded_and_walk_the_negatives_by_epoch(tmp_path):
    negs = [f"n{i}" for i in range(6)]
    records = read_train_data(write(tmp_path / "t.jsonl", [{"query": "q", "pos": ["a", "b"], "neg": negs}]), 3)
    ds = GroupDataset(records, group_size=3, seed=7)
    seen = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        seen.append(ds[0]["passages"])
    assert all(len(p) == 3 and p[0] in ("a", "b") for p in seen)
    assert seen[0][0] != seen[1][0]  # positives rotate
    assert sorted(n for p in seen for n in p[1:]) == negs  # three epochs cover the six negatives once
    ds.set_epoch(0)
    assert ds[0] == {"query": "q", "passages": seen[0]}  # reproducible


def test_too_few_negatives_are_drawn_with_replacement(tmp_path):
    records = read_train_data(write(tmp_path / "t.jsonl", [{"query": "q", "pos": ["a"], "neg": ["n"]}]), 4)
    assert GroupDataset(records, 4)[0]["passages"] == ["a", "n", "n", "n"]


def test_long_queries_are_truncated_keeping_the_prompt(tiny_model_dir, tmp_path):
    _, collate = tiny_contrastive(tiny_model_dir)
    long_query = "flow over a flat plate " * 40
    records = read_train_data(write(tmp_path / "t.jsonl", [{"query": long_query, "pos": ["p"], "neg": ["n"]}]), 2)
    with pytest.warns(LlaraWarning, match="1 of 1 queries exceed"):
        assert report_truncation(records, collate.prompt_tokenizer, collate.query_max_len) == 1
    batch = collate([{"query": long_query, "passages": ["p", "n"]}])
    assert batch["query_ids"].shape[1] == collate.query_max_len
    assert batch["query_ids"][0, -8:].tolist() == collate.prompt_tokenizer.special_ids["query"]


def test_cli_reports_bad_data_before_loading_the_model(tmp_path, capsys):
    path = write(tmp_path / "train.jsonl", [GOOD, {"query": "q", "neg": ["n"]}])
    code = finetune.main(["--model_name_or_path", str(tmp_path / "no-such-model"), "--train_data", str(path),
                          "--output_dir", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"finetune: error: {path}:2: 'pos'")
    assert not (tmp_path / "out" / "llara_config.json").exists()


def test_cli_rejects_a_prompt_longer_than_the_budget(tiny_model_dir, tmp_path, capsys):
    path = write(tmp_path / "train.jsonl", [GOOD])
    code = finetune.main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(path),
                          "--output_dir", str(tmp_path / "out"), "--train_group_size", "2", "--query_max_len", "8"])
    assert code == 1
    assert "max_length 8 leaves no room for text: the query prompt alone" in capsys.readouterr().err


@pytest.mark.parametrize("separator", [" ", "", ": ", None])
def test_encoder_fine_tuning_data_and_mining_format_passages_alike(tiny_model_dir, separator):
    """One format_passage: what fine-tuning trains on and mining writes is what the encoder encodes."""
    from dataclasses import replace

    from llara_retrieval import LlaraEncoder
    from llara_retrieval.train.finetune.data import parse_record
    from llara_retrieval.train.finetune.mine import build_records

    encoder = LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32")
    encoder.spec = replace(encoder.spec, title_separator=separator)
    docs = {"d1": {"title": " Flow ", "text": "over a plate"}, "d2": {"title": "", "text": "no title"}}
    served = [encoder.passage_text(docs[d]) for d in ("d1", "d2")]
    assert served == (["over a plate" if separator is None else f"Flow{separator}over a plate", "no title"])
    record = parse_record({"query": "q", "pos": [docs["d1"]], "neg": [docs["d2"]]}, "t.jsonl:1", separator)
    assert [*record.pos, *record.neg] == served
    mined, _ = build_records({"q1": "q"}, {"q1": {"d1": 1}}, docs, {"q1": {"d2": 1.0}}, 1, "top",
                             title_separator=separator)
    assert mined[0]["pos"] + mined[0]["neg"] == served
