"""The ablation table: dev nDCG@10 of each recipe that was run (this output folder and the ``--compare``
folders, each one ``make reproduce`` with other levers), so a reader sees what each lever gave and why
the defaults are what they are. Only the dev split is read: recipes are compared where choices are made."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, fields
from pathlib import Path

from llara_retrieval.reproduce.config import BOOKKEEPING, ReproduceConfig
from llara_retrieval.reproduce.results import read_record
from llara_retrieval.reproduce.selection import linear_by_normalisation
from llara_retrieval.reproduce.stages import DEV, FINETUNE, PRETRAIN, PRETRAIN_FINETUNE, seeded
from llara_retrieval.retrieval.runs import encoder_name

STATE = "reproduce.json"
# settings a folder saved before they were flags ran with these values, not today's defaults
LEGACY = {"hybrid_normalisations": ["min-max"]}


@dataclass
class Recipe:
    """One recipe's dev figures: ``(mean, sd, seeds)`` per column, ``None`` where nothing finished."""

    label: str
    differs: str
    columns: dict[str, tuple[float, float | None, int] | None]


def _summary(values: list[float]) -> tuple[float, float | None, int] | None:
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None), len(values)


def _dev(config: ReproduceConfig, systems: list[str]) -> tuple[float, float | None, int] | None:
    records = [read_record(config, DEV, s) for s in systems]
    return _summary([r["metrics"]["nDCG@10"] for r in records if r])


def _load(folder: str) -> tuple[ReproduceConfig | None, dict, str]:
    """A folder's config and state as its run recorded them, or why it cannot be read."""
    path = Path(folder) / STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(ReproduceConfig)}
        saved = {**LEGACY, **{k: v for k, v in state["config"].items() if k in known}}
        return ReproduceConfig(**{**saved, "output": str(folder)}), state, ""  # the folder as named now
    except Exception as exc:  # a report never fails on someone else's folder: it says why the row is empty
        return None, {}, f"{type(exc).__name__}: {exc}"


def _flag_value(value) -> str:
    """A setting as it is typed after its flag (a list: space-separated)."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _differs(config: ReproduceConfig, base: ReproduceConfig) -> str:
    mine, theirs = config.to_dict(), base.to_dict()
    diffs = [f"{k.replace('_', '-')} {_flag_value(mine[k])}" for k in mine
             if k not in BOOKKEEPING and mine[k] != theirs.get(k)]
    return ", ".join(diffs) or "same levers"


def _recipe(label: str, differs: str, config: ReproduceConfig, state: dict, round_: int | None) -> Recipe:
    seeds, hybrid = config.seeds, None
    grid = (state.get("selection") or {}).get("grid") or {}
    if grid and round_ is None:
        hybrid = _summary([max(max(scores.values()) for row in grid.values()
                               for scores in linear_by_normalisation(row["linear"]).values())])
    return Recipe(label=label, differs=differs,
                  columns={"2": _dev(config, [encoder_name(config.model)]), "3": _dev(config, [PRETRAIN]),
                           "4": _dev(config, [seeded(FINETUNE, s, round_) for s in seeds if "4" in config.systems]),
                           "5": _dev(config, [seeded(PRETRAIN_FINETUNE, s, round_) for s in seeds
                                              if "5" in config.systems]),
                           "hybrid": hybrid})


def recipes(config: ReproduceConfig, state: dict) -> list[Recipe]:
    """This run's recipe (and its earlier negative rounds), then each ``--compare`` folder's."""
    out = [_recipe("this run", "(the recipe of the table)", config, state, None)]
    out += [_recipe(f"this run, round {r} of {config.negative_rounds}", f"negatives of round {r} only", config, state,
                    r) for r in range(1, config.negative_rounds)]
    for folder in config.compare:
        other, other_state, why = _load(folder)
        if other is None:
            out.append(Recipe(label=f"`{folder}`", differs=f"not readable ({why})", columns={}))
            continue
        differs = _differs(other, config)
        out.append(_recipe(f"`{folder}`", differs, other, other_state, None))
        out += [_recipe(f"`{folder}`, round {r} of {other.negative_rounds}", f"{differs}; negatives of round {r} only",
                        other, other_state, r) for r in range(1, other.negative_rounds)]
    return out
