"""The reproduction report: ``results.md`` (test table with seeds and paired tests, the dev-split choices, the
ablation on dev, settings, stage times and CPU), ``results.png`` (bar chart) and ``commands.md`` (every
command with its wall time), rebuilt from the run files, metrics JSON and the state after every stage."""
from __future__ import annotations

import json
import math
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_save_figure, atomic_write
from llara_retrieval.reproduce.ablation import Recipe, recipes
from llara_retrieval.reproduce.config import FINE_TUNED_ROWS
from llara_retrieval.reproduce.results import METRICS, Claim, Row, TestScores, claims, collect_rows, seed_of
from llara_retrieval.reproduce.selection import linear_by_normalisation
from llara_retrieval.reproduce.stages import UNFINISHED, ReproduceConfig, plan, split_dataset
from llara_retrieval.retrieval.fusion import DEFAULT_NORMALISATION
from llara_retrieval.retrieval.significance import ALPHA, RANDOMISATION, T_TEST
from llara_retrieval.retrieval.splits import RECORD

MARK = "<!-- written by llara-reproduce; rewritten after every stage -->"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {secs:02d} s"


def _stage_time(record: dict) -> str:
    """A stage's wall time, saying when it was finished in several parts (their times are included)."""
    parts = record.get("parts", 1)
    return _duration(record["seconds"]) + (f" ({parts} parts)" if parts > 1 else "")


def p_value(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _figure(row: Row, metric: str) -> str:
    mean, sd = row.mean(metric), row.sd(metric)
    if row.row in FINE_TUNED_ROWS and not row.systems:
        return "left out (--systems)"
    if mean is None:
        return "not run yet"
    return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"


def _current(config: ReproduceConfig, state: dict) -> dict[str, dict]:
    """The records of the stages of the current plan (a changed config can leave others in the state)."""
    names = [s.name for s in plan(config)] + ["hybrid"]
    return {n: state["stages"][n] for n in names if n in state["stages"]}


def _row_seconds(config: ReproduceConfig, state: dict) -> dict[str, float | None]:
    """Each row's own stages' wall time, once they all finished."""
    done, out = _current(config, state), {}
    stages = plan(config)
    for key in ("1", "2", "3", "4", "5"):
        own = [s.name for s in stages if s.row == key]
        out[key] = sum(done[n]["seconds"] for n in own) if own and all(n in done for n in own) else None
    out["6"] = done["hybrid"]["seconds"] if "hybrid" in done else None
    return out


def _table(config: ReproduceConfig, state: dict, rows: list[Row], vs_bm25: dict[str, Claim]) -> list[str]:
    seconds = _row_seconds(config, state)
    lines = ["| # | system | seeds | nDCG@10 | Recall@100 | Δ nDCG@10 vs BM25 | p vs BM25 | wall time |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        claim = vs_bm25.get(r.row)
        seeds = f"{len(r.finished)} of {len(r.systems)}" if r.row in FINE_TUNED_ROWS and r.systems else ""
        cells = [r.row, r.label, seeds, *(_figure(r, m) for m in METRICS),
                 f"{claim.test.delta:+.4f}" if claim else "", p_value(claim.test.p_randomisation) if claim else "",
                 _duration(seconds.get(r.row))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _claims(claims_: list[Claim]) -> list[str]:
    lines = ["| claim | Δ nDCG@10 | p (randomisation) | p (t-test) | wins / losses / ties | verdict |",
             "|---|---:|---:|---:|---:|---|"]
    for c in claims_:
        t = c.test
        seeds = f" ({c.seeds} seeds, per-query mean)" if c.seeds > 1 else ""
        lines.append(f"| {c.text}{seeds} | {t.delta:+.4f} | {p_value(t.p_randomisation)} | {p_value(t.p_t)} | "
                     f"{t.wins} / {t.losses} / {t.ties} | {c.verdict} |")
    return lines


def _per_seed(config: ReproduceConfig, rows: list[Row]) -> str:
    by_row = {r.row: r for r in rows}
    values4 = dict(zip(map(seed_of, by_row["4"].finished), by_row["4"].values.get("nDCG@10", [])))
    values5 = dict(zip(map(seed_of, by_row["5"].finished), by_row["5"].values.get("nDCG@10", [])))
    pairs = [f"seed {s}: {values5[s] - values4[s]:+.4f}" for s in config.seeds if s in values4 and s in values5]
    return "Δ nDCG@10 of system 5 − system 4, seed by seed: " + "; ".join(pairs) + "." if pairs else ""


def _split_line(config: ReproduceConfig) -> str:
    path = split_dataset(config) / RECORD
    if not path.is_file():
        return "Dev split: not carved yet."
    r = json.loads(path.read_text(encoding="utf-8"))
    return (f"Dev split: {r['dev_queries']} queries drawn from the `{r['split']}` qrels (fraction {r['fraction']}, "
            f"seed {r['seed']}; `{path}`); fine-tuning negatives are mined from the other {r['fit_queries']} "
            "queries only. Every choice below is made on dev; the test split is evaluated once per system.")


def _selection(config: ReproduceConfig, state: dict) -> list[str]:
    choice = state.get("selection")
    if not choice:
        return ["The hybrid's dense run, normalisation and weight are chosen on dev once every dense system "
                "finished."]
    grid = {system: {**row, "linear": linear_by_normalisation(row["linear"])} for system, row in choice["grid"].items()}
    first = next(iter(grid.values()))["linear"]
    weights, norms = list(next(iter(first.values()))), list(first)
    chosen_norm = choice.get("normalisation", DEFAULT_NORMALISATION)  # a selection recorded before the choice
    lines = [f"Hybrid chosen on dev: **{choice['system']}**, linear dense weight **{float(choice['weight']):g}** of "
             f"**{chosen_norm}** normalised scores (the best dev nDCG@10 of linear fusion over {len(grid)} dense runs "
             f"× {len(norms)} normalisation(s) × {len(weights)} weights; RRF fuses the same run). Dev nDCG@10:", "",
             "| dense run | alone | RRF | normalisation | " + " | ".join(f"w={float(w):g}" for w in weights) + " |",
             "|---|---:|---:|---|" + "---:|" * len(weights)]
    for system, row in grid.items():
        for norm, scores in row["linear"].items():
            cells = [f"{scores[w]:.4f}" for w in weights]
            if system == choice["system"] and norm == chosen_norm:
                cells = [f"**{c}**" if float(w) == float(choice["weight"]) else c for c, w in zip(cells, weights)]
            lines.append(f"| {system} | {row['dense']:.4f} | {row['rrf']:.4f} | {norm} | " + " | ".join(cells) + " |")
    return lines


def _ablation(found: list[Recipe]) -> list[str]:
    def cell(value):
        if value is None:
            return ""
        mean, sd, n = value
        return f"{mean:.4f}" + (f" ± {sd:.4f} ({n})" if sd is not None else (f" ({n})" if n > 1 else ""))

    lines = ["| recipe | levers that differ from this run | 2 zero-shot | 3 pretrain | 4 finetune | "
             "5 pretrain → finetune | best linear hybrid |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in found:
        lines.append(f"| {r.label} | {r.differs} | " + " | ".join(cell(r.columns.get(k)) for k in
                                                              ("2", "3", "4", "5", "hybrid")) + " |")
    return lines


def _fine_tuned_rows(c: ReproduceConfig) -> str:
    if len(c.systems) == len(FINE_TUNED_ROWS):
        return "rows 4 and 5 alike"
    left_out = [r for r in FINE_TUNED_ROWS if r not in c.systems]
    return f"row {', '.join(c.systems)} only; row {', '.join(left_out)} left out by --systems"


def _settings(c: ReproduceConfig) -> str:
    budget = (f"{c.finetune_epochs:g} epoch(s) over the fit queries" if c.finetune_by_epochs
              else f"{c.finetune_steps} steps")
    rounds = ("negatives mined with BM25" if c.negative_rounds == 1 else
              f"{c.negative_rounds} rounds: round 1 on BM25 negatives, each later round on negatives mined with the "
              "previous round's model, every round from the same start model")
    extra = "".join(f" Extra {name} flags: `{flags}`." for name, flags in (("pretrain", c.pretrain_args),
                                                                          ("finetune", c.finetune_args)) if flags)
    return (f"Settings: passages cut to {c.passage_max_len} tokens and queries to {c.query_max_len} (prompt included) "
            f"for encoding and fine-tuning; pretrain (seed {c.pretrain_seed}): LoRA r={c.lora_r} α={c.lora_alpha}, "
            f"{c.pretrain_steps} steps × {c.pretrain_batch_size} examples of {c.pretrain_max_len} tokens "
            f"(chunks of {c.pretrain_chunk_tokens}) from {', '.join(f'`{p}`' for p in c.pretrain_text)}, lr "
            f"{c.pretrain_lr}; finetune ({_fine_tuned_rows(c)}, seeds {', '.join(map(str, c.seeds))}): LoRA "
            f"r={c.lora_r} α={c.lora_alpha} dropout {c.lora_dropout}, {budget}, {c.finetune_batch_size} queries × "
            f"group {c.train_group_size} (1 positive + {c.train_group_size - 1} negatives drawn from "
            f"{c.mine_negatives} kept per query out of the top {c.mine_depth}; {rounds}), τ={c.temperature}, lr "
            f"{c.finetune_lr} ({c.lr_scheduler}, warm-up {c.warmup_ratio:g} of the steps), in-batch negatives"
            f"{f', GradCache chunks of {c.grad_cache_chunk}' if c.grad_cache_chunk else ''}. "
            f"Hybrid weights tried on dev: {', '.join(f'{w:g}' for w in c.hybrid_weights)}, over "
            f"{' and '.join(c.hybrid_normalisations)} normalised scores.{extra}")


def _times(config: ReproduceConfig, state: dict) -> list[str]:
    done = _current(config, state)
    cpus = sorted({cpu for r in done.values() for cpu in r.get("cpu", "not recorded").split("; ")})
    lines = [f"Stage wall times ({_duration(sum(r['seconds'] for r in done.values()))} in all; CPU: "
             f"{'; '.join(cpus) if cpus else 'none yet'}):", "", "| stage | wall time | CPU | finished |",
             "|---|---:|---|---|"]
    lines += [f"| {n} | {_stage_time(r)} | {r.get('cpu', '')} | {r['finished']} |" for n, r in done.items()]
    todo = [s for s in plan(config) if s.name not in done]
    started = state.get(UNFINISHED, {})
    partial = {s.name: started[s.name] for s in todo if started.get(s.name, {}).get("command") == s.command()}
    if partial:
        lines += ["", "Started, not finished (resumed by the same command; their time so far counts when they "
                  "finish): " + ", ".join(f"{n} ({_duration(r['seconds'])})" for n, r in partial.items()) + "."]
    if todo:
        lines += ["", f"Not finished yet ({len(todo)}): {', '.join(s.name for s in todo)}. Run the same command again "
                  "to continue."]
    return lines


def markdown(config: ReproduceConfig, state: dict, rows: list[Row], claims_: list[Claim]) -> str:
    vs_bm25 = {c.row_a: c for c in claims_ if c.row_b == "1"}
    lines = [MARK, "", f"Evaluation: `{config.dataset}`, split `{config.eval_split}`; model `{config.model}`.", ""]
    if config.test:
        lines += _table(config, state, rows, vs_bm25)
        seeded_rows = "Rows 4 and 5" if len(config.systems) == 2 else f"Row {config.systems[0]}"
        reuse = {("4", "5"): "row 5 reuses row 3's model and row 4's BM25 negatives; ",
                 ("5",): "row 5 reuses row 3's model; ", ("4",): ""}[tuple(config.systems)]
        lines += ["", f"{seeded_rows}: mean ± sample sd over the seeds that finished. Δ and p: paired over the test "
                  "queries (seeded rows: each query's nDCG@10 averaged over the seeds). Wall time: the row's own "
                  f"stages, dev and test evaluation included ({reuse}the hybrid reuses cached runs).", "",
                  "Claims (test nDCG@10):", ""]
        lines += _claims(claims_) if claims_ else ["(none can be tested yet)"]
        lines += ["", f"p (randomisation): {RANDOMISATION}, {config.permutation_rounds} rounds, seed "
                  f"{config.stats_seed} (exact when 2^queries ≤ rounds); p (t-test): {T_TEST}. A verdict is **met** "
                  f"when Δ > 0 and p (randomisation) < {ALPHA}, **missed** when Δ < 0 and p < {ALPHA}, else "
                  "**not significant**.", "", _per_seed(config, rows)]
    else:
        lines += ["Dev-only run (`--no-test`): the test split was not evaluated; compare recipes in the ablation "
                  "below, then run the chosen one with the test split."]
    lines += ["", "## Model selection on the dev split", "", _split_line(config), "", *_selection(config, state),
              "", "## Ablation (dev nDCG@10)", "",
              "Each recipe is one output folder (`--compare` lists the others); seeded columns: mean ± sd (seeds). "
              "Compare recipes only on the same dev split.", "", *_ablation(recipes(config, state)),
              "", "## Settings and times", "", _settings(config), "", *_times(config, state), "",
              "Commands: `commands.md`; chart: `results.png`."]
    return "\n".join(lines).rstrip("\n") + "\n"


def commands_md(state: dict) -> str:
    lines = [MARK, "", "Every stage, in run order, exactly as it ran (`python` = the project's interpreter), "
             "with its wall time and CPU:", ""]
    for name, record in state["stages"].items():
        lines += [f"## {name} ({_stage_time(record)}, finished {record['finished']}, "
                  f"{record.get('cpu', 'CPU not recorded')})", "", "```bash", record["command"], "```", ""]
    return "\n".join(lines)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def plot(rows: list[Row], path: Path) -> Path | None:
    """Grouped bars of test nDCG@10 and Recall@100 per row (seeded rows: mean with a ± sd bar), BM25 dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.finished]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.2))
    xs = range(len(done))
    for offset, metric in ((-0.2, "nDCG@10"), (0.2, "Recall@100")):
        bars = ax.bar([x + offset for x in xs], [r.mean(metric) for r in done], width=0.4, label=metric,
                      yerr=[_nan_if_none(r.sd(metric)) for r in done], capsize=3)  # NaN: no bar drawn
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    bm25 = next((r for r in done if r.row == "1"), None)
    if bm25:
        ax.axhline(bm25.mean("nDCG@10"), color="grey", linestyle="--", linewidth=1, label="BM25 nDCG@10")
    labels = [f"{r.row}. {r.finished[0] if len(r.finished) == 1 else r.systems[0].rsplit('-s', 1)[0]}"
              + (f" ({len(r.finished)} seeds)" if len(r.finished) > 1 else "") for r in done]
    ax.set_xticks(list(xs), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.2)
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    ax.set_title("LLaRA ablation (make reproduce), test split")
    fig.tight_layout()
    atomic_save_figure(fig, path)
    return path


def write_report(config: ReproduceConfig, state: dict) -> Path:
    output = Path(config.output)
    rows = collect_rows(config, state)
    claims_ = claims(config, rows, TestScores(config)) if config.test else []
    atomic_write(output / "commands.md", commands_md(state))
    plot(rows, output / "results.png")
    return atomic_write(output / "results.md", markdown(config, state, rows, claims_))
