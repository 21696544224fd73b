"""The adaptation loss: one forward with the 4-D mask == two separate forwards, and == a hand-written
computation from plain full-logit forwards."""

import copy

import pytest
import torch

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.core.loading import load_model, resolve_spec
from llara_retrieval.core.prompts import PromptTokenizer
from llara_retrieval.train.pretrain import head_losses as head_losses_module
from llara_retrieval.train.pretrain.data import (
    EBAE,
    EBAR,
    PAD,
    SHARED,
    PretrainCollator,
    PretrainDataset,
    excluded_target_ids,
    read_pretrain_records,
)
from llara_retrieval.train.pretrain.head_losses import BagOfWordsTerm, HeadTerm, NextTokenTerm, bag_of_words_share
from llara_retrieval.train.pretrain.model import (
    PretrainLoss,
    allowed_attention,
    attention_masks,
    bag_of_words_loss,
    branch_weights,
    lm_loss,
    lm_token_weights,
)
from tests.support.tiny import build_tiny_model, cranfield_texts, write_pretrain_data

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


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


def make_batch(tokenizer, spec, data_file, n=4, max_length=75, with_lm=True):
    pt = PromptTokenizer(tokenizer, spec.prompts)
    dataset = PretrainDataset(data_file, pt, max_length, excluded=excluded_target_ids(tokenizer, pt))
    collator = PretrainCollator(pt, tokenizer.pad_token_id, with_lm=with_lm)
    return dataset, collator([dataset[i] for i in range(n)]), pt


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_one_forward_equals_two_forwards(family_model, data_file, impl):
    model, tokenizer, spec = family_model
    model.set_attn_implementation(impl)
    dataset, batch, pt = make_batch(tokenizer, spec, data_file, max_length=95)  # longer than gemma3's window 16
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
    dataset, batch, pt = make_batch(tokenizer, spec, data_file, n=3, max_length=1000)  # texts kept whole
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
            targets = sorted(set(tokenizer(target_text, add_special_tokens=False)["input_ids"]) - special)
            out.append(-sum(logp[t] for t in targets) / len(targets))
            if side == "passage":  # next-token loss over the text tokens only
                start = len(pt.pieces("passage")[0])
                preds = torch.log_softmax(logits[start - 1:start - 1 + len(text_ids)], dim=-1)
                lm.append(-preds[torch.arange(len(text_ids)), torch.tensor(text_ids)])
    assert len({len(x) for x in lm}) > 1  # texts of different lengths: token and row means differ
    # the reference's LM loss: the mean over all text tokens of the micro-batch
    want = {"ebae": torch.stack(ebae).mean(), "ebar": torch.stack(ebar).mean(), "lm": torch.cat(lm).mean()}
    want["loss"] = 0.3 * want["ebae"] + 0.2 * want["ebar"] + 0.5 * want["lm"]
    for key, value in want.items():
        torch.testing.assert_close(got[key], value.float(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # LM weight 0: no LM columns are computed at all
        _, no_lm, _ = make_batch(tokenizer, spec, data_file, n=3, max_length=1000, with_lm=False)
        off = PretrainLoss(ebae_weight=0.3, ebar_weight=0.2, lm_weight=0.0)(model, no_lm)
    assert "lm" not in no_lm and "lm" not in off
    torch.testing.assert_close(off["loss"], 0.3 * want["ebae"] + 0.2 * want["ebar"], rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # --lm_mean row: each text's mean, then the texts
        rows = PretrainLoss(ebae_weight=0.3, ebar_weight=0.2, lm_weight=0.5, lm_mean="row")(model, batch)
    torch.testing.assert_close(rows["lm"], torch.stack([x.mean() for x in lm]).mean().float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("missing", ["predict_targets", "summarize_targets"])
def test_a_branch_without_targets_hands_its_weight_to_the_other_as_the_reference(tiny_model_dir, data_file, missing):
    """The reference's bag-of-words loss is the mean of the two branch losses when both have targets in
    the micro-batch, else the one present: that branch then weighs ebae_weight + ebar_weight."""
    spec = resolve_spec(str(tiny_model_dir))
    model, tokenizer = load_model(spec, torch.float32)
    _, batch, _ = make_batch(tokenizer, spec, data_file, n=3)
    batch[missing] = torch.full_like(batch[missing], -1)
    present = "ebae" if missing == "predict_targets" else "ebar"
    with torch.no_grad():
        ref = PretrainLoss(ebae_weight=0.03, ebar_weight=0.05, lm_weight=0.0)(model, batch)
        fixed = PretrainLoss(ebae_weight=0.03, ebar_weight=0.05, lm_weight=0.0, bow_weighting="fixed")(model, batch)
    assert float(ref[present]) > 0 and float(ref["ebar" if present == "ebae" else "ebae"]) == 0
    torch.testing.assert_close(ref["loss"], 0.08 * ref[present], rtol=1e-6, atol=1e-7)
    own = 0.03 if present == "ebae" else 0.05
    torch.testing.assert_close(fixed["loss"], own * ref[present], rtol=1e-6, atol=1e-7)


def test_lm_token_weights_token_and_row_means_by_hand():
    """Rows with 1, 3 and 0 text tokens: the token mean weighs each of the 4 tokens 1/4 (the reference's
    CrossEntropyLoss over the flattened micro-batch); the row mean gives each of the 2 texts 1/2, split
    over its tokens; a row without tokens counts in neither."""
    labels = torch.tensor([[-100, -100, 5], [7, 8, 9], [-100, -100, -100]])
    token = lm_token_weights(labels)
    assert token.tolist() == lm_token_weights(labels, "token").tolist()
    torch.testing.assert_close(token, torch.tensor([[0, 0, .25], [.25, .25, .25], [0, 0, 0]]))
    torch.testing.assert_close(lm_token_weights(labels, "row"),
                               torch.tensor([[0, 0, .5], [1 / 6, 1 / 6, 1 / 6], [0, 0, 0]]))
    assert lm_token_weights(torch.full((2, 3), -100)).sum() == 0  # no text tokens: no NaN
    with pytest.raises(ValueError, match="lm mean"):
        lm_token_weights(labels, "sequence")


def test_branch_weights_by_hand():
    """The reference's EBAE/EBAR weights: both present -> the weights given; one branch without targets in
    the whole micro-batch -> the other gets both (0.05 + 0.05 = 0.1); 'fixed' never moves them."""
    some, none = torch.tensor([[3, 4], [-1, -1]]), torch.full((2, 2), -1)
    assert branch_weights(0.05, 0.05, some, some) == (0.05, 0.05)
    assert branch_weights(0.05, 0.05, some, none) == pytest.approx((0.1, 0.05))
    assert branch_weights(0.03, 0.05, none, some) == pytest.approx((0.03, 0.08))
    assert branch_weights(0.03, 0.05, none, none) == (0.03, 0.05)  # nothing to weigh
    assert branch_weights(0.03, 0.05, some, none, "fixed") == (0.03, 0.05)
    with pytest.raises(ValueError, match="weighting"):
        branch_weights(0.05, 0.05, some, some, "mean")


@pytest.mark.parametrize("frozen_head", [False, True])
@pytest.mark.parametrize("head_kind", ["plain", "softcap", "bias"])
def test_head_losses_equal_full_logits(monkeypatch, frozen_head, head_kind):
    """Losses and gradients (hidden states, head weight) of the chunked head losses == a hand computation
    on full logits; a head with a bias goes the unchunked way, to the same result."""
    monkeypatch.setattr(head_losses_module, "CHUNK_ELEMENTS", 6 * 50)  # 6 text rows, 1 special row per chunk
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=head_kind == "bias", dtype=torch.float64).requires_grad_(not frozen_head)
    cap = 3.0 if head_kind == "softcap" else None
    text = torch.randn(4, 7, 16, generator=gen, dtype=torch.float64).requires_grad_()
    special = torch.randn(3, 5, 16, generator=gen, dtype=torch.float64)
    special[0, 3] = special[0, 1]  # tied maxima: amax shares the gradient between the two positions
    special.requires_grad_()
    labels = torch.randint(0, 50, (4, 7), generator=gen)
    labels[0, 5:] = -100
    labels[2] = -100  # a row without text tokens does not count
    targets = torch.stack([torch.randperm(50, generator=gen)[:6] for _ in range(3)])  # distinct ids per row
    targets[1, 2:] = -1
    targets[2] = -1  # a row without targets does not count
    valid = labels != -100
    terms = [NextTokenTerm(text[valid], labels[valid], lm_token_weights(labels)[valid], 0.7),
             BagOfWordsTerm(special, targets, 0.2)]
    got, got_parts = head_losses_module.head_losses(head, cap, terms)

    def logits(hidden):
        raw = head(hidden)
        return raw if cap is None else cap * torch.tanh(raw / cap)

    # the default token mean: every text token of the micro-batch weighs the same
    lm = -torch.log_softmax(logits(text[valid]), -1).gather(1, labels[valid][:, None]).mean()
    bow = torch.stack([-torch.log_softmax(logits(special[i]).amax(dim=0), -1)[targets[i][targets[i] >= 0]].mean()
                       for i in (0, 1)]).mean()  # max-pool over the k positions, then log-softmax
    want = 0.7 * lm + 0.2 * bow
    torch.testing.assert_close(got_parts, torch.stack([lm, bow]).float())
    torch.testing.assert_close(got, want.float())
    params = [text, special] + ([] if frozen_head else list(head.parameters()))
    for g, w in zip(torch.autograd.grad(3.0 * got, params), torch.autograd.grad(3.0 * want, params)):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)  # both compute in float32


def _bag_of_words_head(device: str, head_dtype: torch.dtype = torch.float32, autocast: torch.dtype | None = None):
    """Loss and gradients (hidden states, head weight) of one bag-of-words head term on fixed random inputs,
    the head in ``head_dtype``, under ``autocast`` if given."""
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(50, 16, generator=gen).to(device)
    hidden = torch.randn(3, 5, 16, generator=gen).to(device).requires_grad_()
    targets = torch.stack([torch.randperm(50, generator=gen)[:6] for _ in range(3)]).to(device)
    head = torch.nn.Linear(16, 50, bias=False, device=device, dtype=head_dtype)
    with torch.no_grad():
        head.weight.copy_(weight)
    term = HeadTerm(hidden, lambda logits, rows: bag_of_words_share(logits, targets[rows], 3))
    with torch.autocast(device, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        loss, _ = head_losses_module.head_losses(head, None, [term])
    return (loss, *torch.autograd.grad(loss, [hidden, head.weight]))


@pytest.mark.parametrize("device", DEVICES)
def test_head_products_run_in_bf16_under_bf16_autocast(device):
    """``--bf16`` training runs the model under autocast, and the head's products with it (as autocast runs
    any Linear: it is most of a pretraining step's work): the same results as a bf16 head's products, returned
    in float32 (the weight's gradient in the weight's dtype), and float32's to within bf16 rounding (2 % in
    norm: a logit rounded to bf16 can tie or move a max-pooled maximum, which routes its gradient)."""
    assert head_losses_module.product_dtype(torch.zeros(2, device=device)) == torch.float32
    with torch.autocast(device, dtype=torch.bfloat16):
        assert head_losses_module.product_dtype(torch.zeros(2, device=device)) == torch.bfloat16
    plain = _bag_of_words_head(device)
    mixed = _bag_of_words_head(device, autocast=torch.bfloat16)
    bf16_head = _bag_of_words_head(device, head_dtype=torch.bfloat16)
    for got, exact, want in zip(mixed, plain, bf16_head):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want.float(), rtol=1e-6, atol=1e-7)
        assert float(((got - exact).norm() / exact.norm()).detach()) < 2e-2  # bf16 rounding may move a tied maximum
    assert not torch.equal(mixed[1], plain[1])  # the products did run in bf16


def test_head_products_stay_float32_under_fp16_autocast():
    """fp16 autocast keeps the head in float32: its logits' gradients, formed before loss scaling, would
    underflow in fp16."""
    for got, want in zip(_bag_of_words_head("cpu", autocast=torch.float16), _bag_of_words_head("cpu")):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("single_forward", [True, False])
def test_step_gradients_equal_plain_autograd(family_model, data_file, single_forward, device):
    """Every parameter's gradient of our step (chunked head, the tied embedding's rows added into the
    head's gradient) == plain autograd through the model's own full-logit forwards; gradients are dense."""
    model, tokenizer, spec = family_model
    model = model if device == "cpu" else copy.deepcopy(model).to(device)
    model.set_attn_implementation("sdpa")
    _, batch, _ = make_batch(tokenizer, spec, data_file)
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    embedding = model.get_input_embeddings()
    model.zero_grad(set_to_none=True)
    PretrainLoss(0.3, 0.2, 0.5, single_forward=single_forward)(model, batch)["loss"].backward()
    ours = {name: p.grad.clone() for name, p in model.named_parameters()}
    assert not embedding.sparse and not any(g.is_sparse for g in ours.values())

    model.zero_grad(set_to_none=True)
    ids, pos, seg = batch["input_ids"], batch["position_ids"], batch["segments"]
    width, b_len = ids.shape[1], int((seg == EBAR).sum(1).max())
    a_len = int((seg == EBAE).sum(1).max())
    query_cols = list(range(width - a_len - b_len)) + list(range(width - b_len, width))
    passage = model(input_ids=ids[:, :width - b_len], attention_mask=(seg[:, :width - b_len] != PAD).long(),
                    position_ids=pos[:, :width - b_len]).logits
    query = model(input_ids=ids[:, query_cols], attention_mask=(seg[:, query_cols] != PAD).long(),
                  position_ids=pos[:, query_cols]).logits
    want = (0.5 * lm_loss(passage[:, batch["lm_columns"]], batch["lm_labels"])
            + 0.3 * bag_of_words_loss(passage[:, batch["ebae_columns"]], batch["summarize_targets"])
            + 0.2 * bag_of_words_loss(query[:, batch["ebar_columns"] - a_len], batch["predict_targets"]))
    want.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
    model.zero_grad(set_to_none=True)


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
