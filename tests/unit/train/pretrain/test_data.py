"""Pretraining data as the reference builds it (FlagEmbedding research/LLARA/pretrain/data.py), checked on
the reference's own toy data with the released LLaRA tokenizer: the combined sequence fits --max_length,
targets are the distinct ids of the (stop-word filtered) target texts with a BOS counted."""
import json
import re

import pytest

from llara_retrieval.core.prompts import PromptTokenizer
from llara_retrieval.train.pretrain.data import (
    ENGLISH_STOPWORDS,
    PretrainCollator,
    PretrainDataset,
    excluded_target_ids,
    read_pretrain_records,
    stopword_filter,
)
from tests.support.released import RELEASED, build_released_layout_model, released_tokens

pytestmark = pytest.mark.skipif(not (RELEASED / "tokenizer.model").is_file(),
                                reason=f"shared tokenizer files not found at {RELEASED}")
PROBE = RELEASED / "probe_pretrain.jsonl"


@pytest.fixture(scope="module")
def prompt_tokenizer(tmp_path_factory) -> PromptTokenizer:
    from transformers import AutoTokenizer

    folder = build_released_layout_model(tmp_path_factory.mktemp("released-layout"))
    return PromptTokenizer(AutoTokenizer.from_pretrained(folder))


def reference_filter(text: str) -> str:
    """The reference's --remove_stop_words, written out: non-word runs -> space, listed words dropped."""
    words = set(ENGLISH_STOPWORDS) | {"!", ",", ".", "?"}
    return " ".join(w for w in re.sub(r"[\W_]+", " ", text).split() if w.lower() not in words)


def reference_example(sp, record: dict, cutoff_len: int, remove_stop_words: bool):
    """One example as the reference's dataset + collator build it (sentencepiece ids, as its slow tokenizer)."""
    ids = released_tokens()["special_token_ids"]
    prefix = [1] + sp.encode('"')
    summarize = sp.encode('", summarize the above passage within eight words: ') + [ids[f"<s{i}>"] for i in range(1, 9)]
    predict = sp.encode('", predict the following passage within eight words: ') + [ids[f"<s{i}>"] for i in range(9, 17)]
    text = sp.encode(record["input"])[:cutoff_len - len(prefix) - len(summarize) - len(predict)]
    outputs = [record["output_summarize"], record["output_predict"]]
    if remove_stop_words:
        outputs = [reference_filter(t) for t in outputs]
    targets = [sorted({i for i in ([1] + sp.encode(t))[:cutoff_len] if i > 2}) for t in outputs]
    return prefix + text + summarize + predict, targets


@pytest.mark.parametrize("remove_stop_words", [False, True])
def test_examples_equal_the_reference_on_its_toy_data(prompt_tokenizer, remove_stop_words):
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(RELEASED / "tokenizer.model"))
    records = [json.loads(line) for line in PROBE.read_text(encoding="utf-8").splitlines()]
    excluded = excluded_target_ids(prompt_tokenizer.tokenizer, prompt_tokenizer)
    dataset = PretrainDataset(PROBE, prompt_tokenizer, 128, excluded=excluded,
                              target_filter=stopword_filter("english" if remove_stop_words else None))
    batch = PretrainCollator(prompt_tokenizer, prompt_tokenizer.pad_id)([dataset[i] for i in range(len(dataset))])
    for row, (record, example) in enumerate(zip(records, dataset)):
        want_ids, (want_summarize, want_predict) = reference_example(sp, record, 128, remove_stop_words)
        got_ids = batch["input_ids"][row][batch["segments"][row] >= 0].tolist()
        assert got_ids == want_ids and len(got_ids) == 128  # the probe texts are long: the budget is full
        assert (example.summarize, example.predict) == (want_summarize, want_predict)


def test_branch_budget_gives_each_branch_the_whole_max_length(prompt_tokenizer):
    records = read_pretrain_records(PROBE)
    combined = PretrainDataset(records, prompt_tokenizer, 128)
    branch = PretrainDataset(records, prompt_tokenizer, 128, length_budget="branch")
    prefix, summarize = prompt_tokenizer.pieces("passage")
    _, predict = prompt_tokenizer.pieces("query")
    assert {len(ex.text) for ex in combined} == {128 - len(prefix) - len(summarize) - len(predict)}
    assert {len(ex.text) for ex in branch} == {128 - len(prefix) - max(len(summarize), len(predict))}


def test_stopword_filter_works_on_words_not_tokens(tmp_path):
    english = stopword_filter("english")
    assert english("The llama's wool_fibre, isn't it? Don't 42 in-situ.") == "llama wool fibre 42 situ"
    (tmp_path / "words.txt").write_text("llama\nWOOL\n", encoding="utf-8")
    assert stopword_filter(str(tmp_path / "words.txt"))("The llama's wool, fibre!") == "The s fibre"
    assert stopword_filter(None) is None
