"""Dev-split nDCG@10 during fine-tuning: a callback that encodes a BEIR split with the live model.

``--eval_max_docs`` caps the corpus (judged documents always kept, the rest a seeded sample): a cheap
proxy for tracking progress on CPU, not a number to report.
"""
from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from llara_retrieval._utils.atomic import atomic_save_figure
from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.retrieval.metrics import evaluate

EVAL_LOG = "eval_log.jsonl"
EVAL_PNG = "eval_curve.png"
METRIC = "nDCG@10"


class DevEvaluator:
    """Encodes the dev corpus and queries with the model being trained and scores them."""

    def __init__(self, beir_dir: str, split: str, spec, query_max_len: int, passage_max_len: int,
                 max_docs: int | None = None, batch_size: int = 32, seed: int = 42):
        from llara_retrieval.retrieval.data import load_dataset

        ds = load_dataset(beir_dir, split)
        doc_ids = list(ds.corpus)
        if max_docs and len(doc_ids) > max_docs:
            judged = {d for docs in ds.qrels.values() for d in docs if d in ds.corpus}
            others = [d for d in doc_ids if d not in judged]
            keep = judged | set(random.Random(seed).sample(others, max(0, max_docs - len(judged))))
            doc_ids = [d for d in doc_ids if d in keep]
        self.doc_ids, self.docs = doc_ids, [ds.corpus[d] for d in doc_ids]
        self.qids, self.queries, self.qrels = list(ds.queries), list(ds.queries.values()), ds.qrels
        self.spec = replace(spec, query_max_length=query_max_len, passage_max_length=passage_max_len)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, lm: torch.nn.Module, tokenizer) -> dict[str, float]:
        from llara_retrieval.retrieval.faiss_index import flat_search

        was_training = lm.training
        lm.eval()
        try:
            device = next(lm.parameters()).device
            enc = LlaraEncoder(lm, tokenizer, self.spec, device)
            d = enc.encode_passages(self.docs, batch_size=self.batch_size, show_progress_bar=True)
            q = enc.encode_queries(self.queries, batch_size=self.batch_size)
        finally:
            lm.train(was_training)
        run = flat_search(q, self.qids, d, self.doc_ids, 100)
        return {f"eval_{k}": v for k, v in evaluate(self.qrels, run).items() if k in (METRIC, "Recall@100")}


class DevEvalCallback(TrainerCallback):
    """Evaluates every ``eval_every`` steps (0: only at the end) on rank 0; logs and plots the metric."""

    def __init__(self, evaluator: DevEvaluator, lm: torch.nn.Module, tokenizer, output_dir: str, eval_every: int):
        self.evaluator, self.lm, self.tokenizer = evaluator, lm, tokenizer
        self.path = Path(output_dir) / EVAL_LOG
        self.eval_every = eval_every
        self.trainer = None  # set by the driver: metrics go through trainer.log into loss_log.jsonl too
        self.last_step = -1

    def run(self, args, state, control) -> None:
        if not state.is_world_process_zero or state.global_step == self.last_step:
            return
        self.last_step = state.global_step
        mixed = getattr(args, "autocast", None)  # encode as training computes: bf16/fp16 autocast, if it does
        with torch.autocast(args.device.type, dtype=torch.bfloat16 if mixed == "bf16" else torch.float16,
                            enabled=mixed is not None):
            row = {"step": state.global_step, **self.evaluator(self.lm, self.tokenizer)}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.trainer is not None:
            should_log = control.should_log  # Trainer.log clears it: keep this step's loss row
            self.trainer.log({k: v for k, v in row.items() if k != "step"})
            control.should_log = should_log
        plot_metric(self.path, self.path.with_name(EVAL_PNG))

    def on_step_end(self, args, state, control, **kwargs):
        if self.eval_every and state.global_step % self.eval_every == 0:
            self.run(args, state, control)

    def on_train_end(self, args, state, control, **kwargs):
        self.run(args, state, control)


def plot_metric(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot([r["step"] for r in rows], [r[f"eval_{METRIC}"] for r in rows], marker=".")
    ax.set_title(f"dev {METRIC}")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, png_path)
