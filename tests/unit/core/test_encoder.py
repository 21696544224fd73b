"""LlaraEncoder against independent computations: prompts, pooling, padding and batch invariance."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from llara_retrieval import LlaraEncoder, LlaraError
from llara_retrieval.core.encoder import length_batches
from llara_retrieval.core.loading import peft_quietly
from tests.support.reference_forward import llara_vector
from tests.support.tiny import build_tiny_model, cranfield_texts

PASSAGE_SUFFIX = '", summarize the above passage within eight words: <s1><s2><s3><s4><s5><s6><s7><s8>'
QUERY_SUFFIX = '", predict the following passage within eight words: <s9><s10><s11><s12><s13><s14><s15><s16>'


@pytest.fixture(scope="module")
def encoder(tiny_model_dir) -> LlaraEncoder:
    return LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return cranfield_texts(12)


def expected_ids(tok, text: str, suffix: str, max_length: int | None = None) -> list[int]:
    """The method's sequence built by hand: BOS '"' text suffix, text cut to fit max_length."""
    prefix = [tok.bos_token_id] + tok('"', add_special_tokens=False)["input_ids"]
    tail = tok(suffix, add_special_tokens=False)["input_ids"]
    body = tok(text, add_special_tokens=False)["input_ids"]
    if max_length is not None:
        body = body[:max_length - len(prefix) - len(tail)]
    return prefix + body + tail


def test_prompt_ids_match_the_method(encoder, texts):
    tok = encoder.tokenizer
    assert encoder.prompt_tokenizer.build(texts[:3], "passage", None) == [expected_ids(tok, t, PASSAGE_SUFFIX) for t in texts[:3]]
    assert encoder.prompt_tokenizer.build(texts[:3], "query", None) == [expected_ids(tok, t, QUERY_SUFFIX) for t in texts[:3]]


def test_max_length_counts_the_prompt_and_truncation_keeps_the_tail(encoder, texts):
    ids = encoder.prompt_tokenizer.build([texts[0]], "passage", 60)[0]
    assert len(ids) == 60
    assert ids == expected_ids(encoder.tokenizer, texts[0], PASSAGE_SUFFIX, 60)
    assert ids[-8:] == encoder.tokenizer.convert_tokens_to_ids([f"<s{i}>" for i in range(1, 9)])
    with pytest.raises(LlaraError, match="leaves no room for text"):
        encoder.prompt_tokenizer.build(["x"], "passage", 10)


def test_vectors_match_a_hand_written_forward_pass(encoder, texts):
    tok = encoder.tokenizer
    passage_ids = tok.convert_tokens_to_ids([f"<s{i}>" for i in range(1, 9)])
    query_ids = tok.convert_tokens_to_ids([f"<s{i}>" for i in range(9, 17)])
    P = encoder.encode_passages(texts[:4], max_length=128)
    Q = encoder.encode_queries(texts[4:6], max_length=48)
    for vec, text in zip(P, texts[:4]):
        ref = llara_vector(encoder.model, expected_ids(tok, text, PASSAGE_SUFFIX, 128), passage_ids)
        np.testing.assert_allclose(vec, ref.numpy(), atol=1e-5)
    for vec, text in zip(Q, texts[4:6]):
        ref = llara_vector(encoder.model, expected_ids(tok, text, QUERY_SUFFIX, 48), query_ids)
        np.testing.assert_allclose(vec, ref.numpy(), atol=1e-5)


def test_rows_are_unit_norm_float32_and_differ(encoder, texts):
    P = encoder.encode_passages(texts)
    assert P.dtype == np.float32 and P.shape == (len(texts), encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(P, axis=1), 1.0, atol=1e-5)
    assert np.abs(P[0] - P[1]).max() > 1e-3  # not the constant vector of a wrong pooling


def test_padding_side_does_not_change_vectors(encoder, texts):
    right = encoder.encode_passages(texts, batch_size=5)
    left = LlaraEncoder(encoder.model, encoder.tokenizer, encoder.spec, encoder.device, padding_side="left")
    np.testing.assert_allclose(left.encode_passages(texts, batch_size=5), right, atol=1e-5)


def test_vector_does_not_depend_on_batch_composition(encoder, texts):
    batched = encoder.encode_queries(texts, batch_size=4)
    alone = np.stack([encoder.encode_queries([t])[0] for t in texts])
    reversed_ = encoder.encode_queries(texts[::-1], batch_size=7)[::-1]
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(reversed_, alone, atol=1e-5)


def test_literal_special_tokens_in_a_text_are_dropped(encoder):
    ids = encoder.prompt_tokenizer.build(["wing <s3> flutter <s12>"], "passage", None)[0]
    special = encoder.prompt_tokenizer.special_ids
    assert [ids.count(i) for i in special["passage"]] == [1] * 8
    assert not set(special["query"]) & set(ids)
    assert encoder.encode_passages(["wing <s3> flutter <s12>"]).shape == (1, encoder.dim)


def test_title_records_are_title_space_text(encoder):
    rec = encoder.encode_passages([{"title": "Wing flutter", "text": "at high speed"}])
    plain = encoder.encode_passages(["Wing flutter at high speed"])
    no_title = encoder.encode_passages([{"title": "", "text": "at high speed"}, {"text": "at high speed"}])
    np.testing.assert_allclose(rec, plain, atol=1e-6)
    np.testing.assert_allclose(no_title[0], no_title[1], atol=1e-6)


def test_save_and_load_round_trip_gives_identical_vectors(encoder, texts, tmp_path):
    out = encoder.save_pretrained(tmp_path / "enc")
    assert (out / "llara_config.json").exists() and (out / "model.safetensors").exists()
    assert json.loads((out / "llara_config.json").read_text())["dtype"] is None  # each machine picks its own
    again = LlaraEncoder.from_pretrained(out, device="cpu", dtype="float32")
    np.testing.assert_array_equal(again.encode_passages(texts), encoder.encode_passages(texts))
    np.testing.assert_array_equal(again.encode_queries(texts), encoder.encode_queries(texts))


def test_save_with_a_dtype_pins_it_and_leaves_the_encoder_as_it_was(encoder, texts, tmp_path):
    before = encoder.encode_passages(texts)
    out = encoder.save_pretrained(tmp_path / "enc", dtype="bf16")
    assert json.loads((out / "llara_config.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.bfloat16}
    assert encoder.dtype == torch.float32
    np.testing.assert_array_equal(encoder.encode_passages(texts), before)  # the encoder in memory is untouched
    again = LlaraEncoder.from_pretrained(out, device="cpu")
    assert again.dtype == torch.bfloat16  # the pin wins over the machine's choice
    cosine = (again.encode_passages(texts) * encoder.encode_passages(texts)).sum(1)
    assert cosine.min() > 0.99


def test_save_refuses_to_overwrite_without_being_asked(encoder, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("user data")
    with pytest.raises(LlaraError, match="already exists"):
        encoder.save_pretrained(target)
    assert (target / "notes.txt").read_text() == "user data"
    encoder.save_pretrained(target, overwrite=True)
    assert not (target / "notes.txt").exists() and (target / "llara_config.json").exists()


def test_lora_adapter_is_merged_to_the_same_vectors(tiny_model_dir, texts, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = LlaraEncoder.from_pretrained(tiny_model_dir, dtype="float32")
    torch.manual_seed(1)
    with peft_quietly():
        peft_model = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8,
                                                           target_modules=["q_proj", "v_proj", "down_proj"]))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # a non-trivial adapter
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    unmerged = LlaraEncoder(peft_model, base.tokenizer, base.spec, base.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merged = LlaraEncoder.from_pretrained(adapter_dir, dtype="float32")
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]  # peft's noise stays out
    assert type(merged.model).__name__ == "LlamaForCausalLM"
    np.testing.assert_allclose(merged.encode_passages(texts), unmerged.encode_passages(texts), atol=1e-5)
    plain = LlaraEncoder.from_pretrained(tiny_model_dir, dtype="float32").encode_passages(texts)
    assert np.abs(plain - merged.encode_passages(texts)).max() > 1e-3  # the adapter changed something


@pytest.mark.parametrize("family", ["qwen2", "gemma3"])
def test_other_decoder_families(family, tmp_path, texts):
    enc = LlaraEncoder.from_pretrained(build_tiny_model(tmp_path / family, family), dtype="float32")
    batched = enc.encode_passages(texts, batch_size=5)
    alone = np.stack([enc.encode_passages([t])[0] for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    left = LlaraEncoder(enc.model, enc.tokenizer, enc.spec, enc.device, padding_side="left")
    np.testing.assert_allclose(left.encode_passages(texts, batch_size=5), batched, atol=1e-5)


def test_bfloat16_is_close_to_float32(tiny_model_dir, texts, encoder):
    bf16 = LlaraEncoder.from_pretrained(tiny_model_dir, dtype="bfloat16")
    assert bf16.dtype == torch.bfloat16
    cosine = (bf16.encode_passages(texts) * encoder.encode_passages(texts)).sum(1)
    assert cosine.min() > 0.99


def test_empty_input_gives_an_empty_matrix(encoder):
    assert encoder.encode_queries([]).shape == (0, encoder.dim)
    assert encoder.encode_passages([]).shape == (0, encoder.dim)


@pytest.mark.parametrize("bad, message", [
    ([None], "passage 0: value must be a string, got missing"),
    (["ok", 3], "passage 1: value must be a string, got a int"),
    (["ok", {"title": "t"}], "passage 1: field 'text' must be a string, got missing"),
])
def test_bad_passages_name_the_item(encoder, bad, message):
    with pytest.raises(LlaraError, match=message):
        encoder.encode_passages(bad)


def test_bad_query_names_the_item(encoder):
    with pytest.raises(LlaraError, match="query 2: value must be a string, got a list"):
        encoder.encode_queries(["a", "b", ["c"]])


def test_missing_local_model_is_a_one_line_error():
    with pytest.raises(LlaraError, match="./no/such/model: no such file or directory") as info:
        LlaraEncoder.from_pretrained("./no/such/model")
    assert "\n" not in str(info.value)


def test_unreachable_hub_model_is_a_one_line_error():
    """Offline (as here), a hub id fails with one line naming the model, not a transformers traceback."""
    code = "from llara_retrieval import LlaraEncoder; LlaraEncoder.from_pretrained('org/not-a-model-xyz')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode != 0
    assert "LlaraError: cannot load model 'org/not-a-model-xyz'" in proc.stderr.strip().splitlines()[-1]


def test_a_dir_that_is_not_a_model_is_rejected(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(LlaraError, match="not a model dir"):
        LlaraEncoder.from_pretrained(tmp_path)


def test_bad_device_and_dtype_are_clear(tiny_model_dir):
    with pytest.raises(LlaraError, match="unknown dtype"):
        LlaraEncoder.from_pretrained(tiny_model_dir, dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(LlaraError, match="CUDA is not available"):
            LlaraEncoder.from_pretrained(tiny_model_dir, device="cuda:1")


def test_length_batches_cap_rows_and_padded_tokens():
    lengths = [10, 7, 7, 5, 3, 3, 2]  # already longest first
    order = list(range(len(lengths)))
    assert list(length_batches(order, lengths, 3, None)) == [[0, 1, 2], [3, 4, 5], [6]]
    # 20 padded tokens: 2 rows of 10, then 2 of 7, then 3 rows of 5 would be 15 <= 20, 4 would be 20
    assert list(length_batches(order, lengths, 8, 20)) == [[0, 1], [2, 3], [4, 5, 6]]
    assert list(length_batches(order, lengths, 8, 6)) == [[0], [1], [2], [3], [4, 5], [6]]  # too long: alone


def test_token_budget_batching_gives_the_same_vectors(encoder, texts):
    plain = LlaraEncoder(encoder.model, encoder.tokenizer, encoder.spec, encoder.device, max_batch_tokens=None)
    tight = LlaraEncoder(encoder.model, encoder.tokenizer, encoder.spec, encoder.device, max_batch_tokens=40)
    np.testing.assert_allclose(tight.encode_passages(texts, batch_size=16), plain.encode_passages(texts, batch_size=16),
                               atol=1e-5)
    assert encoder.max_batch_tokens == 2048  # "auto" on a CPU
    with pytest.raises(LlaraError, match="max_batch_tokens must be at least 1, not 0"):
        LlaraEncoder(encoder.model, encoder.tokenizer, encoder.spec, encoder.device, max_batch_tokens=0)
