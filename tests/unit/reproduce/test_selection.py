"""The hybrid's dense run, normalisation and weight: the dev nDCG@10 maximum over the grid, checked against a
brute force with its own numpy fusion and pytrec_eval; ReproduceConfig's checks and flags."""
import random
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.beir.run import run_path
from llara_retrieval.reproduce.__main__ import parser
from llara_retrieval.reproduce.config import ReproduceConfig
from llara_retrieval.reproduce.pipeline import choose_on_dev
from llara_retrieval.reproduce.selection import choose_hybrid, linear_by_normalisation
from llara_retrieval.reproduce.stages import hybrid_stage, plan, runs_dir, split_dataset
from llara_retrieval.retrieval.runs import write_run


def make_runs(seed=0, queries=12, docs=30):
    rng = random.Random(seed)
    qrels = {f"q{i}": {f"d{rng.randrange(docs)}": 1, f"d{rng.randrange(docs)}": 2} for i in range(queries)}

    def noisy(signal):  # relevant documents get a boost of ``signal`` on top of noise
        return {q: {f"d{j}": rng.random() + signal * qrels[q].get(f"d{j}", 0) for j in range(docs)} for q in qrels}

    return qrels, noisy(0.6), {"weak": noisy(0.2), "strong": noisy(0.5), "noise": noisy(0.0)}


def own_ndcg10(qrels, run):
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    return sum(v["ndcg_cut_10"] for v in per_query.values()) / len(qrels)


def own_fusion(dense, sparse, w, normalisation="min-max"):
    """Linear fusion written out: min-max to [0, 1] or z-score by numpy. Every list here holds every document
    (the fusion of incomplete lists: test_fusion.py)."""
    out = {}
    for q in dense:
        parts = []
        for run in (dense[q], sparse[q]):
            docs, values = list(run), np.array(list(run.values()))
            scaled = ((values - values.min()) / (values.max() - values.min()) if normalisation == "min-max"
                      else (values - values.mean()) / values.std())
            parts.append(dict(zip(docs, scaled)))
        out[q] = {d: w * parts[0][d] + (1 - w) * parts[1][d] for d in parts[0]}
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_choice_is_the_dev_maximum_of_the_grid(seed):
    qrels, bm25, dense = make_runs(seed)
    weights, norms = [0.2, 0.5, 0.8], ["min-max", "z-score"]
    choice = choose_hybrid(qrels, bm25, dense, weights, norms)
    scores = {(s, w, n): own_ndcg10(qrels, own_fusion(run, bm25, w, n)) for s, run in dense.items() for w in weights
              for n in norms}
    assert scores[(choice.system, choice.weight, choice.normalisation)] == pytest.approx(max(scores.values()), abs=1e-6)
    for (system, weight, norm), value in scores.items():
        assert choice.grid[system]["linear"][norm][weight] == pytest.approx(value, abs=1e-6)
    assert choice.grid["noise"]["dense"] < choice.grid["strong"]["dense"]
    only_min_max = choose_hybrid(qrels, bm25, dense, weights)
    assert list(only_min_max.grid["weak"]["linear"]) == ["min-max"] and only_min_max.normalisation == "min-max"
    with pytest.raises(LlaraError, match="at least one dense dev run"):
        choose_hybrid(qrels, bm25, {}, weights)


def test_a_grid_recorded_before_normalisations_reads_as_min_max():
    assert linear_by_normalisation({"0.2": 0.5, "0.4": 0.6}) == {"min-max": {"0.2": 0.5, "0.4": 0.6}}
    nested = {"min-max": {"0.2": 0.5}, "z-score": {"0.2": 0.7}}
    assert linear_by_normalisation(nested) == nested


def test_config_refuses_unsound_settings(tmp_path):
    base = {"dataset": str(tmp_path), "pretrain_text": ["x.jsonl"]}
    assert ReproduceConfig(**base).seeds == [42, 43, 44]
    for bad, pattern in ((dict(train_split="test"), "both 'test'"), (dict(dev_fraction=0.0), "--dev-fraction"),
                         (dict(seeds=[1, 1]), "distinct seeds"), (dict(hybrid_weights=[1.5]), "--hybrid-weights"),
                         (dict(lr_scheduler="step"), "--lr-scheduler"), (dict(negative_rounds=0), "--negative-rounds"),
                         (dict(systems=["6"]), "--systems"), (dict(systems=[]), "--systems"),
                         (dict(systems=["5", "5"]), "--systems"), (dict(hybrid_normalisations=["rank"]),
                                                                   "--hybrid-normalisations")):
        with pytest.raises(LlaraError, match=pattern):
            ReproduceConfig(**base, **bad)


def test_flags_cover_every_field_with_its_type():
    args = parser().parse_args(["--dataset", "d", "--pretrain-text", "a", "b", "--seeds", "1", "2",
                                "--hybrid-weights", "0.25", "--no-test", "--finetune-epochs", "2", "--systems", "5"])
    config = ReproduceConfig(**vars(args))
    assert config.seeds == [1, 2] and config.hybrid_weights == [0.25] and config.test is False
    assert config.systems == ["5"]
    assert config.pretrain_text == ["a", "b"] and config.finetune_epochs == 2.0 and config.compare == []
    defaults = ReproduceConfig(**vars(parser().parse_args(["--dataset", "d", "--pretrain-text", "a"])))
    assert defaults == ReproduceConfig(dataset="d", pretrain_text=["a"])


def test_finetuning_budget_is_steps_unless_epochs_are_given():
    def budget(**knobs) -> list[str]:
        stage = next(s for s in plan(ReproduceConfig(dataset="d", pretrain_text=["a"], **knobs))
                     if s.name == "finetune-s42")
        argv = list(stage.argv)
        return [flag + " " + argv[argv.index(flag) + 1] for flag in ("--max_steps", "--num_train_epochs")
                if flag in argv]

    assert budget() == ["--max_steps 24"]
    assert budget(finetune_steps=5) == ["--max_steps 5"]
    assert budget(finetune_epochs=1.0) == ["--num_train_epochs 1.0"]
    with pytest.raises(LlaraError, match="--finetune-epochs > 0 or --finetune-steps > 0"):
        ReproduceConfig(dataset="d", pretrain_text=["a"], finetune_steps=0)


@pytest.mark.parametrize("systems", [["4"], ["5"], ["4", "5"]])
def test_systems_left_out_have_no_stages(systems):
    """``--systems 5`` (an ablation of a lever for system 5) trains and evaluates no system 4, and the reverse;
    each seed still mines its negatives."""
    stages = plan(ReproduceConfig(dataset="d", pretrain_text=["a"], seeds=[1, 2], systems=systems))
    names = [s.name for s in stages]
    for seed in (1, 2):
        mine = next(s for s in stages if s.name == f"mine-s{seed}")
        assert mine.row == systems[0]  # its time counts in a row that is in the table
        for row, system in (("4", f"finetune-s{seed}"), ("5", f"pretrain-finetune-s{seed}")):
            own = {system, f"{system}-dev", f"{system}-eval"}
            assert (own <= set(names)) if row in systems else not own & set(names)


def test_systems_are_kept_in_table_order_and_the_hybrid_stage_names_its_normalisation():
    assert ReproduceConfig(dataset="d", pretrain_text=["a"], systems=["5", "4"]).systems == ["4", "5"]
    config = ReproduceConfig(dataset="d", pretrain_text=["a"])
    argv = list(hybrid_stage(config, "runs/m", 0.5, "z-score", after=()).argv)
    assert argv[argv.index("--hybrid-weight") + 1] == "0.5"
    assert argv[argv.index("--hybrid-normalisation") + 1] == "z-score"


@pytest.mark.parametrize("test", [True, False])
def test_choose_on_dev_candidates_are_tested_runs_or_in_a_dev_only_run_every_dev_run(tmp_path, test):
    """With test evaluations the hybrid may fuse only a tested system; a dev-only run (``--no-test``) has none,
    so every dense dev run competes and no test stage is returned."""
    dataset = tmp_path / "toy"
    dataset.mkdir()
    config = ReproduceConfig(dataset=str(dataset), pretrain_text=["p.jsonl"], output=str(tmp_path / "out"),
                             seeds=[1], hybrid_weights=[0.5], test=test)
    stages = plan(config)
    dense = sorted({s.system for s in stages if s.split == "dev" and s.encoder})
    qrels, bm25, runs = make_runs(queries=12)
    write_run(bm25, run_path(runs_dir(config), "toy", "dev", "bm25"), tag="bm25")
    for system in dense:  # the last system gets the strongest dense signal
        write_run(runs["strong"] if system == dense[-1] else runs["noise"],
                  run_path(runs_dir(config), "toy", "dev", system), tag=system)
    qrels_file = split_dataset(config) / "qrels" / "dev.tsv"
    qrels_file.parent.mkdir(parents=True)
    qrels_file.write_text("".join(f"{q}\t{d}\t{g}\n" for q, docs in qrels.items() for d, g in docs.items()))
    chosen, choice = choose_on_dev(config, stages)
    assert choice["system"] == dense[-1] and set(choice["grid"]) == set(dense)
    assert (chosen.name == f"{dense[-1]}-eval") if test else chosen is None


def test_the_default_model_works_outside_the_repo_and_is_the_makefiles_encoder():
    """The Python default is the embedded model itself (a relative spec path would read as a hub id elsewhere);
    the spec file the Makefile passes describes the same encoder, so both give the same vectors."""
    from dataclasses import replace

    from llara_retrieval.core.loading import resolve_spec

    model = ReproduceConfig(dataset="d", pretrain_text=["a"]).model
    spec_file = resolve_spec(Path(__file__).resolve().parents[3] / "encoders" / "llara-gemma3-270m.json")
    assert model == "default" and resolve_spec(model) == replace(spec_file, description="")
