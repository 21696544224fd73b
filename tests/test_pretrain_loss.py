"""The adaptation loss: one forward with the 4-D mask == two separate forwards, and == a hand-written
computation from plain full-logit forwards."""

import pytest
import torch
from tiny import build_tiny_model, cranfield_texts, write_pretrain_data

from llara_retrieval.encoder import LlaraEncoder
from llara_retrieval.errors import LlaraError
from llara_retrieval.loading import load_model, resolve_spec
from llara_retrieval.prompts import PromptTokenizer
from llara_retrieval.train.pretrain_data import (EBAE, EBAR, PAD, SHARED, PretrainCollator, PretrainDataset,
                                                 excluded_target_ids, read_pretrain_records)
from llara_retrieval.train import linear_cross_entropy as lce
from llara_retrieval.train.pretrain_model import PretrainLoss, allowed_attention, attention_masks, lm_loss


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, cranfield_dir):
    texts = [t for t in cranfield_texts(30) if t][:9]
    return write_pretrain_data(tmp_path_factory.mktemp("pretrain-data") / "train.jsonl", texts)


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma3"])
def family_model(request, tmp_path_factory, tiny_model_dir):
    path = tiny_model_dir if request.param == "llama" else build_tiny_model(
        tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)
    spec = resolve_spec(str(path))
    model, tokenizer = load_model(spec, torch.float32)
    return model, tokenizer, spec


def make_batch(tokenizer, spec, data_file, n=4, max_length=40, with_lm=True):
    pt = PromptTokenizer(tokenizer, spec.prompts)
    dataset = PretrainDataset(data_file, pt, max_length, excluded=excluded_target_ids(tokenizer, pt, None))
    collator = PretrainCollator(pt, tokenizer.pad_token_id, with_lm=with_lm)
    return dataset, collator([dataset[i] for i in range(n)]), pt


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_one_forward_equals_two_forwards(family_model, data_file, impl):
    model, tokenizer, spec = family_model
    model.set_attn_implementation(impl)
    dataset, batch, pt = make_batch(tokenizer, spec, data_file, max_length=60)  # longer than gemma3's window 16
    with torch.no_grad():
        one = PretrainLoss()(model, batch)
        two = PretrainLoss(single_forward=False)(model, batch)
        mask = attention_masks(model.config, batch["segments"], batch["position_ids"], torch.float32)
        hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=mask,
                                  position_ids=batch["position_ids"]).last_hidden_state
    for key in ("loss", "ebae", "ebar", "lm"):
        torch.testing.assert_close(one[key], two[key], rtol=1e-5, atol=1e-5)
    # The branch embeddings equal the encoder's own passage/query embeddings of the same text.
    encoder = LlaraEncoder(model, tokenizer, spec, torch.device("cpu"))
    for side, cols in (("passage", batch["ebae_columns"]), ("query", batch["ebar_columns"])):
        got = torch.nn.functional.normalize(hidden[:, cols].mean(1), dim=-1)
        want = torch.cat([encoder.embed_ids([pt.wrap(dataset[i].text, side, None)], side) for i in range(4)])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_loss_matches_hand_computation(tiny_model_dir, data_file):
    spec = resolve_spec(str(tiny_model_dir))
    model, tokenizer = load_model(spec, torch.float32)
    dataset, batch, pt = make_batch(tokenizer, spec, data_file, n=3)
    with torch.no_grad():
        got = PretrainLoss(ebae_weight=0.3, ebar_weight=0.2, lm_weight=0.5)(model, batch)
    special = set(pt.special_ids["passage"] + pt.special_ids["query"]) | set(tokenizer.all_special_ids)
    records = read_pretrain_records(data_file)
    ebae, ebar, lm = [], [], []
    for i in range(3):
        text_ids = dataset[i].text
        for side, target_text, out in (("passage", records[i][1], ebae), ("query", records[i][2], ebar)):
            ids = pt.wrap(text_ids, side, None)
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0]
            rows = [j for j, t in enumerate(ids) if t in pt.special_ids[side]]
            logp = torch.log_softmax(logits[rows].max(dim=0).values, dim=-1)
            targets = sorted(set(tokenizer(target_text, add_special_tokens=False)["input_ids"][:40]) - special)
            out.append(-sum(logp[t] for t in targets) / len(targets))
            if side == "passage":  # next-token loss over the text tokens only
                start = len(pt.pieces("passage")[0])
                preds = torch.log_softmax(logits[start - 1:start - 1 + len(text_ids)], dim=-1)
                lm.append(-preds[torch.arange(len(text_ids)), torch.tensor(text_ids)].mean())
    want = {"ebae": torch.stack(ebae).mean(), "ebar": torch.stack(ebar).mean(), "lm": torch.stack(lm).mean()}
    want["loss"] = 0.3 * want["ebae"] + 0.2 * want["ebar"] + 0.5 * want["lm"]
    for key, value in want.items():
        torch.testing.assert_close(got[key], value.float(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # LM weight 0: no LM columns are computed at all
        _, no_lm, _ = make_batch(tokenizer, spec, data_file, n=3, with_lm=False)
        off = PretrainLoss(ebae_weight=0.3, ebar_weight=0.2, lm_weight=0.0)(model, no_lm)
    assert "lm" not in no_lm and "lm" not in off
    torch.testing.assert_close(off["loss"], 0.3 * want["ebae"] + 0.2 * want["ebar"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frozen_head", [False, True])
def test_chunked_lm_loss_equals_full_logits(monkeypatch, frozen_head):
    """Loss and gradients (hidden states, head weight) of the chunked loss == cross-entropy on full logits."""
    monkeypatch.setattr(lce, "CHUNK_ELEMENTS", 2 * 50)  # 2 rows per chunk: many chunks, a ragged last one
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 7, 16, generator=gen, dtype=torch.float64).requires_grad_()
    weight = torch.randn(50, 16, generator=gen, dtype=torch.float64).requires_grad_(not frozen_head)
    labels = torch.randint(0, 50, (4, 7), generator=gen)
    labels[0, 5:] = -100
    labels[2] = -100  # a row without text tokens does not count
    got = lce.linear_cross_entropy(hidden, weight, labels)
    want = lm_loss(hidden @ weight.T, labels)
    torch.testing.assert_close(got, want.float())
    params = [hidden] + ([] if frozen_head else [weight])
    for g, w in zip(torch.autograd.grad(3.0 * got, params), torch.autograd.grad(3.0 * want, params)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)  # both compute in float32


def test_mask_layout():
    # row: pad, BOS, text, text, A, A, B, B  (positions of B restart after the text)
    seg = torch.tensor([[PAD, SHARED, SHARED, SHARED, EBAE, EBAE, EBAR, EBAR]])
    pos = torch.tensor([[0, 0, 1, 2, 3, 4, 3, 4]])
    allowed = allowed_attention(seg, pos)[0, 0].int().tolist()
    assert allowed == [[1, 0, 0, 0, 0, 0, 0, 0],
                       [0, 1, 0, 0, 0, 0, 0, 0],
                       [0, 1, 1, 0, 0, 0, 0, 0],
                       [0, 1, 1, 1, 0, 0, 0, 0],
                       [0, 1, 1, 1, 1, 0, 0, 0],
                       [0, 1, 1, 1, 1, 1, 0, 0],
                       [0, 1, 1, 1, 0, 0, 1, 0],
                       [0, 1, 1, 1, 0, 0, 1, 1]]
    assert allowed_attention(seg, pos, window=2)[0, 0, 6].int().tolist() == [0, 0, 0, 1, 0, 0, 1, 0]


def test_collator_layout(tiny_model_dir, data_file):
    spec = resolve_spec(str(tiny_model_dir))
    _, tokenizer = load_model(spec, torch.float32)
    dataset, batch, pt = make_batch(tokenizer, spec, data_file)
    ids = batch["input_ids"]
    assert (ids[:, batch["ebae_columns"]] == torch.tensor(pt.special_ids["passage"])).all()
    assert (ids[:, batch["ebar_columns"]] == torch.tensor(pt.special_ids["query"])).all()
    for row in range(4):
        real = batch["segments"][row] != PAD
        branch_b = pt.wrap(dataset[row].text, "query", None)
        b_cols = (batch["segments"][row] == EBAR) | (batch["segments"][row] == SHARED)
        assert ids[row][b_cols].tolist() == branch_b
        assert batch["position_ids"][row][b_cols].tolist() == list(range(len(branch_b)))
        assert ids[row][real & (batch["segments"][row] != EBAR)].tolist() == pt.wrap(dataset[row].text, "passage", None)


def test_bad_records_name_file_and_line(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "output_summarize": "a", "output_predict": "b"}\n{"input": 3}\n', encoding="utf-8")
    with pytest.raises(LlaraError, match=f"{bad}:2: field 'input'"):
        read_pretrain_records(bad)
    bad.write_text('\n[1]\n', encoding="utf-8")
    with pytest.raises(LlaraError, match=f"{bad}:2: expected a JSON object"):
        read_pretrain_records(bad)
