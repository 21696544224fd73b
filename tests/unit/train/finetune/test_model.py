"""InfoNCE against a hand computation; cross-device (torchrun, 2 CPU processes) and GradCache equal
the plain single-process loss and gradients."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llara_retrieval import LlaraEncoder
from llara_retrieval.core.loading import resolve_spec
from llara_retrieval.train.finetune.model import gradcache_step, info_nce
from tests.support.finetune import fixed_items, grads, tiny_contrastive

ROOT = Path(__file__).resolve().parents[4]


def test_info_nce_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 5))
    p = rng.normal(size=(6, 5))  # group size 2: positives at rows 0, 2, 4
    tau = 0.07
    expected = 0.0
    for i in range(3):
        logits = [float(q[i] @ p[j]) / tau for j in range(6)]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(x - top) for x in logits))
        expected += (log_z - logits[2 * i]) / 3
    got = info_nce(torch.tensor(q), torch.tensor(p), tau)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="equal groups"):
        info_nce(torch.tensor(q), torch.tensor(p[:5]), tau)


def test_info_nce_keeps_float32_scores_under_bf16_autocast():
    """At τ = 0.01 the logits of near neighbours sit near 90, where bf16 steps are 0.5 apart: a bf16 product
    would move the loss by tenths. Under bf16 autocast the loss and gradients must equal float32's."""
    gen = torch.Generator().manual_seed(0)
    centre = torch.nn.functional.normalize(torch.randn(1, 64, generator=gen), dim=-1)
    q, p = (torch.nn.functional.normalize(centre + 0.3 * torch.randn(n, 64, generator=gen), dim=-1)
            for n in (4, 16))  # cosines about 0.9: hard negatives

    def loss_and_grads(autocast: bool) -> tuple[float, torch.Tensor, torch.Tensor]:
        qq, pp = q.clone().requires_grad_(), p.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = info_nce(qq, pp, 0.01)
        loss.backward()
        return loss.item(), qq.grad, pp.grad

    reference = info_nce(q.double(), p.double(), 0.01).item()
    loss, q_grad, p_grad = loss_and_grads(autocast=True)
    loss32, q_grad32, p_grad32 = loss_and_grads(autocast=False)
    assert loss == pytest.approx(reference, rel=1e-5) and loss == pytest.approx(loss32, rel=1e-6)
    torch.testing.assert_close(q_grad, q_grad32)
    torch.testing.assert_close(p_grad, p_grad32)
    bf16_scores = (q.bfloat16() @ p.bfloat16().T).float() / 0.01  # what autocast alone would compute
    assert (bf16_scores - q @ p.T / 0.01).abs().max() > 0.05  # the error the float32 product avoids


def test_model_loss_uses_the_encoder_pooling(tiny_model_dir):
    """The training embeddings are LlaraEncoder's vectors (same prompts, pooling, padding)."""
    model, collate = tiny_contrastive(tiny_model_dir)
    model.eval()
    items = fixed_items(2, 2)
    batch = collate(items)
    enc = LlaraEncoder(model.lm, collate.prompt_tokenizer.tokenizer, resolve_spec(tiny_model_dir), torch.device("cpu"))
    with torch.no_grad():
        q = model(query_ids=batch["query_ids"])["embeddings"]
        p = model(passage_ids=batch["passage_ids"])["embeddings"]
        loss = model(**batch)["loss"]
    np.testing.assert_allclose(q.numpy(), enc.encode_queries([it["query"] for it in items], max_length=48), atol=1e-5)
    passages = [t for it in items for t in it["passages"]]
    np.testing.assert_allclose(p.numpy(), enc.encode_passages(passages, max_length=64), atol=1e-5)
    assert loss.item() == pytest.approx(info_nce(q, p, model.temperature).item(), rel=1e-6)


def test_gradcache_equals_the_full_batch(tiny_model_dir):
    torch.manual_seed(0)
    model, collate = tiny_contrastive(tiny_model_dir)
    model.eval()  # no dropout in the tiny model anyway; eval makes the comparison exact by construction
    batch = collate(fixed_items(4, 3))
    full = model(**batch)["loss"]
    full.backward()
    full_grads = grads(model)
    model.zero_grad(set_to_none=True)
    cached = gradcache_step(model, model, batch["query_ids"], batch["passage_ids"], chunk_size=3)
    cached_grads = grads(model)
    assert cached.item() == pytest.approx(full.item(), rel=1e-5)
    assert cached_grads.keys() == full_grads.keys()
    for name, g in full_grads.items():
        torch.testing.assert_close(cached_grads[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_gradcache_replays_dropout(tiny_model_dir):
    """With dropout on, each chunk's re-forward must draw the same masks as its first forward."""
    from peft import LoraConfig, get_peft_model

    from llara_retrieval.core.loading import peft_quietly

    torch.manual_seed(0)
    model, collate = tiny_contrastive(tiny_model_dir)
    with peft_quietly():
        model.lm = get_peft_model(model.lm, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.5,
                                                       target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.train()
    batch = collate(fixed_items(2, 2))
    seen = []
    orig = model.embed

    def spy(ids, side):
        out = orig(ids, side)
        seen.append(out.detach().clone())
        return out

    model.embed = spy
    gradcache_step(model, model, batch["query_ids"], batch["passage_ids"], chunk_size=2)
    n = len(seen) // 2
    assert n == 3  # one query chunk, two passage chunks
    for a, b in zip(seen[:n], seen[n:]):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(seen[0], model.embed(batch["query_ids"], "query").detach())  # dropout is live


@pytest.mark.torchrun
def test_cross_device_negatives_under_torchrun_equal_one_process(tiny_model_dir, tmp_path):
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tests.support.finetune_ddp_worker", str(tiny_model_dir), str(out)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    for ddp_loss, gc_loss in res["rank_losses"]:
        assert ddp_loss == pytest.approx(res["reference_loss"], rel=1e-5)
        assert gc_loss == pytest.approx(res["reference_loss"], rel=1e-5)
    assert res["n_grads"] > 10
    assert res["ddp_grad_max_diff"] <= 1e-5 * max(1.0, res["grad_scale"])
    assert res["gradcache_grad_max_diff"] <= 1e-5 * max(1.0, res["grad_scale"])
    assert res["unscaled_grad_max_diff"] <= 1e-5 * max(1.0, res["grad_scale"])  # default: the reference's 1/2


@pytest.mark.parametrize("name, kwargs", [
    ("activation_checkpointing_enable", {"activation_checkpointing_kwargs": None, "every_n_layers": 1, "offload": False}),
    ("gradient_checkpointing_enable", {"gradient_checkpointing_kwargs": None}),  # what older transformers 5 calls
])
def test_either_checkpointing_call_of_the_trainer_reaches_the_wrapped_lm(tiny_model_dir, name, kwargs):
    import warnings

    model, _ = tiny_contrastive(tiny_model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the old name is deprecated in the newest transformers
        assert not model.lm.is_gradient_checkpointing
        getattr(model, name)(**kwargs)
        assert model.lm.is_gradient_checkpointing
