"""The ablation table reads each recipe's dev metrics (this run, its earlier negative rounds, --compare folders)
and names the levers that differ; mean and sd are checked against statistics on the same numbers."""
import json
import statistics

import pytest

from llara_retrieval.reproduce.ablation import recipes
from llara_retrieval.reproduce.config import ReproduceConfig
from llara_retrieval.reproduce.report import markdown
from llara_retrieval.reproduce.results import collect_rows


def write_metrics(folder, system, ndcg, dataset="toy", split="dev"):
    runs = folder / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"run.{dataset}.{split}.{system}.metrics.json").write_text(json.dumps(
        {"tool": "llara-beir", "system": system, "run_file": f"run.{dataset}.{split}.{system}.trec",
         "metrics": {"nDCG@10": ndcg, "Recall@100": ndcg + 0.1}}))


def make_run(folder, dataset, **levers):
    config = ReproduceConfig(dataset=str(dataset), pretrain_text=["p.jsonl"], output=str(folder), seeds=[1, 2],
                             model="encoders/base.json", **levers)
    folder.mkdir(parents=True)
    (folder / "reproduce.json").write_text(json.dumps({"tool": "llara-reproduce", "stages": {},
                                                       "config": config.to_dict()}))
    return config


def test_recipes_rows_hold_dev_means_and_differences(tmp_path):
    dataset = tmp_path / "toy"
    dataset.mkdir()
    this = make_run(tmp_path / "a", dataset, negative_rounds=2)
    for system, value in (("base", 0.1), ("pretrain", 0.2), ("finetune-s1", 0.50), ("finetune-s2", 0.54),
                          ("finetune-s1-r1", 0.40), ("pretrain-finetune-s1", 0.6)):
        write_metrics(tmp_path / "a", system, value)
    other = make_run(tmp_path / "b", dataset, passage_max_len=512, train_group_size=8)
    write_metrics(tmp_path / "b", "finetune-s2", 0.7)
    this.compare = [str(tmp_path / "b"), str(tmp_path / "missing")]
    rows = recipes(this, {"stages": {}, "selection": {"grid": {"finetune-s1": {"linear": {"0.3": 0.61, "0.5": 0.65}},
                                                               "base": {"linear": {"0.3": 0.2, "0.5": 0.3}}}}})
    labels = ["this run", "this run, round 1 of 2", f"`{other.output}`", f"`{tmp_path}/missing`"]
    assert [r.label for r in rows] == labels
    main, round1, compared, missing = rows
    mean, sd, n = main.columns["4"]
    assert (mean, sd, n) == pytest.approx((statistics.fmean([0.5, 0.54]), statistics.stdev([0.5, 0.54]), 2))
    assert main.columns["5"] == (0.6, None, 1) and main.columns["2"] == (0.1, None, 1)
    assert main.columns["hybrid"] == (0.65, None, 1)
    assert round1.columns["4"] == (0.4, None, 1) and round1.columns["5"] is None
    assert compared.differs == "passage-max-len 512, negative-rounds 1, train-group-size 8"
    assert compared.columns["4"] == (0.7, None, 1) and compared.columns["2"] is None
    assert missing.differs.startswith("not readable (FileNotFoundError")


def test_a_dev_only_run_reports_no_test_figures(tmp_path):
    dataset = tmp_path / "toy"
    dataset.mkdir()
    config = make_run(tmp_path / "a", dataset, test=False)
    write_metrics(tmp_path / "a", "finetune-s1", 0.5)
    text = markdown(config, {"stages": {}}, collect_rows(config, {"stages": {}}), [])
    assert "Dev-only run" in text and "| 1 | BM25" not in text
    assert "| this run | (the recipe of the table) |  |  | 0.5000 |  |  |" in text


def test_a_row_left_out_of_systems_is_shown_as_such_even_with_old_files(tmp_path):
    """A folder run with ``--systems 5`` reports row 4 as left out, even where an earlier run of the folder left
    system 4's metrics behind, and a compared folder names the lever."""
    dataset = tmp_path / "toy"
    dataset.mkdir()
    config = make_run(tmp_path / "a", dataset, systems=["5"])
    for split in ("dev", "test"):
        write_metrics(tmp_path / "a", "finetune-s1", 0.5, split=split)
        write_metrics(tmp_path / "a", "pretrain-finetune-s1", 0.6, split=split)
    text = markdown(config, {"stages": {}}, collect_rows(config, {"stages": {}}), [])
    assert "| 4 | base → finetune |  | left out (--systems) | left out (--systems) |" in text
    assert "| 5 | base → pretrain → finetune | 1 of 2 | 0.6000 | 0.7000 |" in text
    assert "finetune (row 5 only; row 4 left out by --systems, seeds 1, 2)" in text
    main = recipes(config, {"stages": {}})[0]
    assert main.columns["4"] is None and main.columns["5"] == (0.6, None, 1)
    other = make_run(tmp_path / "b", dataset)
    other.compare = [str(tmp_path / "a")]
    assert recipes(other, {"stages": {}})[1].differs == "systems 5"  # as typed after the flag


def test_a_folder_saved_before_a_setting_existed_reads_with_the_value_it_ran_with(tmp_path):
    """A folder saved before the hybrid's normalisation was a choice fused with min-max only: the ablation says
    so instead of assuming today's default, and its old-shape dev grid is reported as min-max."""
    dataset = tmp_path / "toy"
    dataset.mkdir()
    old = make_run(tmp_path / "old", dataset)
    state = json.loads((tmp_path / "old" / "reproduce.json").read_text())
    del state["config"]["hybrid_normalisations"]
    state["selection"] = {"system": "finetune-s1", "weight": 0.3,
                          "grid": {"finetune-s1": {"dense": 0.5, "rrf": 0.55, "linear": {"0.3": 0.61, "0.5": 0.6}}}}
    (tmp_path / "old" / "reproduce.json").write_text(json.dumps(state))
    new = make_run(tmp_path / "new", dataset)
    new.compare = [old.output]
    compared = recipes(new, {"stages": {}})[1]
    assert compared.differs == "hybrid-normalisations min-max" and compared.columns["hybrid"] == (0.61, None, 1)
    text = markdown(old, state, collect_rows(old, state), [])
    assert "| finetune-s1 | 0.5000 | 0.5500 | min-max | **0.6100** | 0.6000 |" in text
    assert "linear dense weight **0.3** of **min-max** normalised scores" in text
