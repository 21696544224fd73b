"""Released LLaRA checkpoints (BAAI/LLARA-passage, -beir, -document): the model card's vectors.

On a tiny random model laid out like the released ones (vocabulary 32,016, Meta's sentencepiece
model, the released ids of <s1>..<s16>): the prompt pieces have the ids the reference code hard-codes,
text ids equal sentencepiece's on every shared probe text, and LlaraEncoder with the committed
``encoders/bge-llara-*.json`` specs gives the model card loop's vectors (float32, 1e-5).
"""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from llara_retrieval import EncoderSpec, LlaraEncoder
from llara_retrieval.core.loading import load_model
from llara_retrieval.core.prompts import PromptTokenizer
from tests.support.released import RELEASED, ModelCardLoop, build_released_layout_model, probe_texts, released_tokens

ENCODERS = Path(__file__).resolve().parents[3] / "encoders"
CARD_SPECS = ["bge-llara-passage.json", "bge-llara-beir.json", "bge-llara-document.json"]
TOLERANCE = 1e-5

pytestmark = pytest.mark.skipif(not (RELEASED / "tokenizer.model").is_file(),
                                reason=f"shared tokenizer files not found at {RELEASED}")


@pytest.fixture(scope="module")
def released_dir(tmp_path_factory) -> Path:
    return build_released_layout_model(tmp_path_factory.mktemp("released-layout"))


@pytest.fixture(scope="module")
def prompt_tokenizer(released_dir) -> PromptTokenizer:
    spec = EncoderSpec.load(ENCODERS / CARD_SPECS[0])
    _, tokenizer = load_model(replace(spec, base_model=str(released_dir)), dtype=None)
    return PromptTokenizer(tokenizer, spec.prompts)


@pytest.fixture(scope="module")
def card(released_dir) -> ModelCardLoop:
    return ModelCardLoop(released_dir)


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    return probe_texts()


def spec_for(name: str, model_dir: Path, tmp_path: Path, **changes) -> Path:
    """The committed spec ``name`` pointed at the tiny model (everything else as committed)."""
    path = tmp_path / name
    replace(EncoderSpec.load(ENCODERS / name), base_model=str(model_dir), **changes).save(path)
    return path


def test_prompt_pieces_have_the_ids_the_reference_code_hard_codes(prompt_tokenizer):
    released = released_tokens()
    ids, expected = released["special_token_ids"], released["expected_ids"]
    prefix, suffix = prompt_tokenizer.pieces("passage")
    assert prefix == expected["prefix_with_bos"] == [1, 376]
    assert suffix == expected["passage_suffix_text"] + [ids[f"<s{i}>"] for i in range(1, 9)]
    prefix, suffix = prompt_tokenizer.pieces("query")
    assert prefix == expected["prefix_with_bos"]
    assert suffix == expected["query_suffix_text"] + [ids[f"<s{i}>"] for i in range(9, 17)]


def test_text_ids_equal_sentencepiece_on_every_probe_text(prompt_tokenizer, card, texts):
    every = [t for group in texts.values() for t in group]
    added = [str(t) for t in prompt_tokenizer.tokenizer.added_tokens_decoder.values()]
    assert not [t for t in every if any(a in t for a in added)]  # so raw sentencepiece is the reference
    assert prompt_tokenizer.sentencepiece is not None
    assert prompt_tokenizer.text_ids(every) == [card.sp.encode(t) for t in every]


def test_added_tokens_inside_a_text_stay_whole_as_in_transformers_4(prompt_tokenizer, card):
    sp = card.sp.encode
    assert prompt_tokenizer.sentencepiece(["x <unk> y", "<s>start", "word<s10>word"]) == [
        sp("x ") + [0] + sp(" y"), [1] + sp("start"), sp("word") + [32009] + sp("word")]
    # a literal LLaRA token would break pooling: text ids drop it (the card's loop would keep it)
    assert prompt_tokenizer.text_ids(["mid <s3> tok"]) == [sp("mid ") + sp(" tok")]


@pytest.fixture(scope="module")
def sample(texts) -> dict[str, list[str]]:
    """Queries, passages with runs of spaces (where transformers 5's own ids differ) and others, and
    texts longer than the card's 512-token cut: enough to exercise every setting, quick on a CPU."""
    spaced = [t for t in texts["passage"] if "  " in t or t[:1].isspace()]
    return {"query": texts["query"], "passage": spaced[:12] + texts["passage"][:12] + texts["long"][:4]}


def test_committed_spec_gives_the_model_card_vectors(released_dir, card, sample, tmp_path):
    encoder = LlaraEncoder.from_pretrained(spec_for(CARD_SPECS[0], released_dir, tmp_path), device="cpu")
    assert str(encoder.dtype) == "torch.float32"
    assert max(len(card.sp.encode(t)) for t in sample["passage"]) > 512  # the 512-token text cut is exercised
    queries = encoder.encode_queries(sample["query"], batch_size=5)
    passages = encoder.encode_passages(sample["passage"], batch_size=8)
    assert np.abs(queries - card.encode(sample["query"], "query").numpy()).max() <= TOLERANCE
    assert np.abs(passages - card.encode(sample["passage"], "passage").numpy()).max() <= TOLERANCE


@pytest.mark.parametrize("name", CARD_SPECS[1:])
def test_every_card_spec_encodes_as_the_verified_one(name):
    verified, other = EncoderSpec.load(ENCODERS / CARD_SPECS[0]), EncoderSpec.load(ENCODERS / name)
    assert other.base_model == "BAAI/LLARA-" + name.removeprefix("bge-llara-").removesuffix(".json")
    assert replace(other, base_model=verified.base_model, description=verified.description) == verified


def test_titles_are_dropped_as_the_card_encodes_text_alone(released_dir, card, tmp_path):
    encoder = LlaraEncoder.from_pretrained(spec_for(CARD_SPECS[1], released_dir, tmp_path), device="cpu")
    record = {"title": "Llama", "text": "The llama is a domesticated South American camelid."}
    vector = encoder.encode_passages([record])
    assert np.abs(vector - card.encode([record["text"]], "passage").numpy()).max() <= TOLERANCE


def test_sequence_budget_cuts_the_text_so_the_prompt_fits_as_in_fine_tuning(released_dir, card, texts, tmp_path):
    path = spec_for(CARD_SPECS[0], released_dir, tmp_path, length_budget="sequence",
                    query_max_length=64, passage_max_length=160)
    encoder = LlaraEncoder.from_pretrained(path, device="cpu")
    long = texts["long"][:2]
    ids = encoder.prompt_tokenizer.build(long, "passage", 160, encoder.spec.length_budget)
    prompt = len(card.prefix) + len(card.suffix["passage"])
    assert ids == [card.input_ids(t, "passage", max_length=160 - prompt) for t in long]
    assert {len(row) for row in ids} == {160}
    expected = card.encode(long, "passage", max_length=160 - prompt).numpy()
    assert np.abs(encoder.encode_passages(long) - expected).max() <= TOLERANCE


def test_a_saved_encoder_dir_keeps_the_sentencepiece_ids(released_dir, card, texts, tmp_path):
    encoder = LlaraEncoder.from_pretrained(spec_for(CARD_SPECS[0], released_dir, tmp_path), device="cpu")
    saved = encoder.save_pretrained(tmp_path / "saved")
    assert (saved / "tokenizer.model").is_file()
    again = LlaraEncoder.from_pretrained(saved, device="cpu")
    assert again.prompt_tokenizer.sentencepiece is not None
    sample = texts["passage"][:12]
    assert np.abs(again.encode_passages(sample) - card.encode(sample, "passage").numpy()).max() <= TOLERANCE
