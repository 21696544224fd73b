"""The reproduction report: ``results.md`` (table, targets, settings), ``results.png`` (bar chart) and
``commands.md`` (every command with its wall time), built from the runs' metrics JSON and the state."""
from __future__ import annotations

import json
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_save_figure, atomic_write
from llara_retrieval.beir.run import metrics_path, run_path
from llara_retrieval.reproduce.stages import FINETUNE, PRETRAIN, PRETRAIN_FINETUNE, ZERO_SHOT, ReproduceConfig, runs_dir
from llara_retrieval.retrieval.runs import encoder_name

MARK = "<!-- written by llara-reproduce; rewritten after every stage -->"
METRICS = ("nDCG@10", "Recall@100")
# (row, label, stages whose time the row adds, the row its deltas compare with)
ROWS = (
    ("1", "BM25 (Pyserini, k1=0.9 b=0.4)", ("bm25",), None),
    ("2", "base + LLaRA prompts, zero-shot", (ZERO_SHOT,), None),
    ("3", "base → pretrain (EBAE + EBAR), zero-shot", ("pretrain-data", PRETRAIN, f"{PRETRAIN}-eval"), "2"),
    ("4", "base → finetune", ("mine", FINETUNE, f"{FINETUNE}-eval"), None),
    ("5", "base → pretrain → finetune", (PRETRAIN_FINETUNE, f"{PRETRAIN_FINETUNE}-eval"), "4"),
    ("6", "hybrid RRF (k=60): BM25 + best dense", ("hybrid",), None),
    ("6b", "hybrid linear (w=0.5, min-max): BM25 + best dense", (), None),
)


def system_metrics(runs: Path, dataset: str, split: str, system: str) -> dict | None:
    path = metrics_path(run_path(runs, Path(dataset).name, split, system))
    return json.loads(path.read_text(encoding="utf-8"))["metrics"] if path.is_file() else None


def system_ndcg(runs: Path, dataset: str, split: str, system: str) -> float:
    metrics = system_metrics(runs, dataset, split, system)
    return metrics["nDCG@10"] if metrics else float("-inf")


def _systems(config: ReproduceConfig, state: dict) -> dict[str, str]:
    """Row -> run system name (the hybrid rows follow the encoder the hybrid stage fused)."""
    names = {"1": "bm25", "2": encoder_name(config.model), "3": PRETRAIN, "4": FINETUNE, "5": PRETRAIN_FINETUNE}
    hybrid = state["stages"].get("hybrid", {}).get("system")
    if hybrid:
        names["6"], names["6b"] = hybrid, hybrid.replace("hybrid-rrf-", "hybrid-linear-", 1)
    return names


def collect_rows(config: ReproduceConfig, state: dict) -> list[dict]:
    """One dict per table row: label, metrics (None when not run yet), seconds, deltas."""
    names, runs = _systems(config, state), runs_dir(config)
    rows = {}
    for key, label, stages, versus in ROWS:
        metrics = system_metrics(runs, config.dataset, config.eval_split, names[key]) if key in names else None
        seconds = [state["stages"][s]["seconds"] for s in stages if s in state["stages"]]
        row = {"row": key, "label": label, "system": names.get(key), "metrics": metrics,
               "seconds": sum(seconds) if len(seconds) == len(stages) and stages else None, "delta": None}
        base = rows.get(versus, {}).get("metrics") if versus else None
        if metrics and base:
            row["delta"] = {m: metrics[m] - base[m] for m in METRICS}
        rows[key] = row
    return list(rows.values())


def _targets(rows: dict[str, dict]) -> list[str]:
    fused = (rows["6"]["system"] or "").removeprefix("hybrid-rrf-")  # the dense run the hybrids fused
    best = next((k for k in ("2", "3", "4", "5") if rows[k]["system"] == fused), None)

    def ndcg(key):
        return rows[key]["metrics"]["nDCG@10"] if key in rows and rows[key]["metrics"] else None

    checks = [("system 5 above BM25", "5", "1"), ("hybrid RRF above BM25", "6", "1"),
              ("hybrid RRF above the best dense run", "6", best), ("hybrid linear above BM25", "6b", "1"),
              ("hybrid linear above the best dense run", "6b", best),
              ("system 5 above system 4 (pretraining helps fine-tuning)", "5", "4"),
              ("system 3 above system 2 (pretraining helps zero-shot)", "3", "2")]
    lines = []
    for text, a, b in checks:
        if ndcg(a) is not None and ndcg(b) is not None:
            verdict = "met" if ndcg(a) > ndcg(b) else "**missed**"
            lines.append(f"- {text}: {ndcg(a):.4f} vs {ndcg(b):.4f}, {verdict}")
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {secs:02d} s"


def markdown(config: ReproduceConfig, state: dict, rows: list[dict]) -> str:
    head = "| # | system | nDCG@10 | Recall@100 | Δ nDCG@10 | Δ Recall@100 | wall time |"
    lines = [MARK, "", f"Evaluation: `{config.dataset}`, split `{config.eval_split}`; model "
             f"`{config.model}`.", "", head, "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, d = r["metrics"], r["delta"]
        cells = [r["row"], r["label"], *(f"{m[k]:.4f}" if m else "not run yet" for k in METRICS),
                 *(f"{d[k]:+.4f}" if d else "" for k in METRICS), _duration(r["seconds"])]
        lines.append("| " + " | ".join(cells) + " |")
    by_key = {r["row"]: r for r in rows}
    targets = _targets(by_key)
    total = sum(s["seconds"] for s in state["stages"].values())
    c = config
    lines += ["", "Δ: row 3 against row 2, row 5 against row 4. The hybrid fuses the dense run with the best "
              "nDCG@10 on this same split (an optimistic, test-set choice). Wall time: the row's own stages (row 5 "
              "reuses the pretrained model of row 3 and the negatives mined for row 4; the hybrid reuses cached "
              "embeddings).",
              "", "Targets:" if targets else "", *targets, "",
              f"Settings (chosen to fit a 2-core CPU): passages cut to {c.passage_max_len} tokens and queries to "
              f"{c.query_max_len} (prompt included) for encoding and fine-tuning; pretrain: LoRA r={c.lora_r} "
              f"α={c.lora_alpha}, {c.pretrain_steps} steps × {c.pretrain_batch_size} examples of "
              f"{c.pretrain_max_len} tokens from {', '.join(f'`{p}`' for p in c.pretrain_text)}, lr {c.pretrain_lr}; "
              f"finetune (rows 4 and 5 alike): LoRA r={c.lora_r} α={c.lora_alpha}, {c.finetune_steps} steps × "
              f"{c.finetune_batch_size} queries × group {c.train_group_size} (1 positive + "
              f"{c.train_group_size - 1} BM25 negatives sampled from the top {c.mine_depth}), τ={c.temperature}, "
              f"lr {c.finetune_lr}, in-batch negatives.",
              "", f"Total wall time of the stages: {_duration(total)}. Commands: `commands.md`; chart: `results.png`."]
    return "\n".join(lines).rstrip("\n") + "\n"


def commands_md(state: dict) -> str:
    lines = [MARK, "", "Every stage, in run order, exactly as it ran (`python` = the project's interpreter), "
             "with its wall time:", ""]
    for name, record in state["stages"].items():
        lines += [f"## {name} ({_duration(record['seconds'])}, finished {record['finished']})", "",
                  "```bash", record["command"], "```", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path | None:
    """Grouped bars of nDCG@10 and Recall@100 per finished system, BM25's nDCG@10 as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["metrics"]]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.2))
    xs = range(len(done))
    for offset, metric in ((-0.2, "nDCG@10"), (0.2, "Recall@100")):
        values = [r["metrics"][metric] for r in done]
        bars = ax.bar([x + offset for x in xs], values, width=0.4, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    bm25 = next((r for r in done if r["row"] == "1"), None)
    if bm25:
        ax.axhline(bm25["metrics"]["nDCG@10"], color="grey", linestyle="--", linewidth=1, label="BM25 nDCG@10")
    ax.set_xticks(list(xs), [f"{r['row']}. {r['system']}" for r in done], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.2)
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    ax.set_title("LLaRA ablation (make reproduce)")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    return path


def write_report(config: ReproduceConfig, state: dict) -> Path:
    output = Path(config.output)
    rows = collect_rows(config, state)
    atomic_write(output / "commands.md", commands_md(state))
    plot(rows, output / "results.png")
    return atomic_write(output / "results.md", markdown(config, state, rows))
