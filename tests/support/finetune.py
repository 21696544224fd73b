"""Shared by the fine-tuning tests and their torchrun worker: a tiny contrastive model and a fixed batch."""
from __future__ import annotations

from pathlib import Path

import torch

from llara_retrieval.core.loading import load_model, resolve_spec
from llara_retrieval.core.prompts import PromptTokenizer
from llara_retrieval.train.finetune.data import GroupCollator
from llara_retrieval.train.finetune.model import ContrastiveModel
from tests.support.tiny import cranfield_texts


def tiny_contrastive(model_dir: str | Path, cross_device: bool = False, temperature: float = 0.05,
                     scale: bool = False):
    """A ContrastiveModel on the tiny LLaMA (float32, full parameters) and its collator; ``scale``: the
    cross-device gradients are scaled by the world size."""
    lm, tokenizer = load_model(resolve_spec(model_dir), torch.float32)
    lm.train()
    pt = PromptTokenizer(tokenizer)
    model = ContrastiveModel(lm, pt.special_ids, temperature=temperature, negatives_cross_device=cross_device,
                             scale_cross_device_gradients=scale)
    return model, GroupCollator(pt, tokenizer.pad_token_id, query_max_len=48, passage_max_len=64)


def fixed_items(n_queries: int, group_size: int) -> list[dict]:
    """Real Cranfield text: query i is a title fragment, its group the next passages in the corpus."""
    texts = cranfield_texts(n_queries * (group_size + 1))
    items = []
    for i in range(n_queries):
        base = n_queries + i * group_size
        items.append({"query": texts[i][:60], "passages": texts[base:base + group_size]})
    return items


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def mini_beir(root: Path, n_docs: int = 60) -> Path:
    """A small BEIR folder cut from Cranfield: the first ``n_docs`` documents, the queries judged on
    them, and their qrels as both ``train`` and ``dev`` splits."""
    import json

    from tests.support.tiny import CRANFIELD

    root.mkdir(parents=True, exist_ok=True)
    docs = [json.loads(line) for line in open(CRANFIELD / "corpus.jsonl", encoding="utf-8")][:n_docs]
    ids = {d["_id"] for d in docs}
    rows = [line.split() for line in open(CRANFIELD / "qrels" / "test.tsv", encoding="utf-8")][1:]
    rows = [r for r in rows if r[1] in ids and int(r[2]) > 0]
    qids = {r[0] for r in rows}
    queries = [q for q in map(json.loads, open(CRANFIELD / "queries.jsonl", encoding="utf-8")) if q["_id"] in qids]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    table = "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows)
    for split in ("train", "dev"):
        (root / "qrels" / f"{split}.tsv").write_text(table)
    return root
