"""A stage finished in parts reports the time of every part: ``_run_stage`` on a real subprocess that fails
once, is rerun and finishes; the time of the unfinished attempt is on disk while it runs (so a killed
attempt keeps its count) and in the report."""
from __future__ import annotations

import json
import sys

import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.reproduce import pipeline
from llara_retrieval.reproduce.report import _times
from llara_retrieval.reproduce.stages import SPLIT, ReproduceConfig, Stage

# attempt 1 exits 3, attempt 2 exits 0; each first waits until the pipeline has saved its running attempt
FLAKY = """
import json, sys, time
from pathlib import Path
marker, state = Path(sys.argv[1]), Path(sys.argv[2])
attempt = int(marker.read_text()) + 1 if marker.exists() else 1
marker.write_text(str(attempt))
print("working", flush=True)
deadline = time.time() + 20
while time.time() < deadline:
    running = json.loads(state.read_text()).get("unfinished", {}).get("split")
    if running and running["parts"] == attempt and running["seconds"] > 0:
        print("SEEN", attempt, flush=True)
        break
    print("waiting", flush=True)
    time.sleep(0.1)
time.sleep(0.5)
sys.exit(0 if attempt >= 2 else 3)
"""


def test_a_stage_finished_in_two_parts_counts_both(tmp_path, monkeypatch):
    (tmp_path / "flaky_stage.py").write_text(FLAKY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(pipeline, "HEARTBEAT_S", 0.0)
    out = tmp_path / "out"
    out.mkdir()
    config = ReproduceConfig(dataset=str(tmp_path / "scifact"), pretrain_text=["pairs.jsonl"], output=str(out))
    stage = Stage(SPLIT, ("flaky_stage", str(tmp_path / "attempts"), str(out / pipeline.STATE)))
    state = {"tool": pipeline.TOOL, "stages": {}}

    with pytest.raises(LlaraError, match="stage split failed with exit status 3"):
        pipeline._run_stage(stage, config, state, set(), sys.executable)
    first = json.loads((out / pipeline.STATE).read_text())
    assert SPLIT not in first["stages"]
    part = first["unfinished"][SPLIT]
    assert part["parts"] == 1 and part["seconds"] >= 0.5 and part["command"] == stage.command()
    assert any(line.startswith("Started, not finished") and "split (" in line for line in _times(config, first))

    pipeline._run_stage(stage, config, first, set(), sys.executable)
    final = json.loads((out / pipeline.STATE).read_text())
    record = final["stages"][SPLIT]
    assert record["parts"] == 2 and record["seconds"] >= part["seconds"] + 0.5
    assert SPLIT not in final["unfinished"]
    assert "SEEN 1" in (out / "logs" / "split.log").read_text() and "SEEN 2" in (out / "logs" / "split.log").read_text()
    assert any(line.startswith("| split |") and "(2 parts)" in line for line in _times(config, final))


def test_a_changed_command_does_not_inherit_the_time_of_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    config = ReproduceConfig(dataset=str(tmp_path / "scifact"), pretrain_text=["pairs.jsonl"], output=str(out))
    stage = Stage(SPLIT, ("json.tool", "--help"))
    state = {"tool": pipeline.TOOL, "stages": {},
             "unfinished": {SPLIT: {"command": "python -m something else", "seconds": 999.0, "parts": 4,
                                    "cpus": ["elsewhere"]}}}
    pipeline._run_stage(stage, config, state, set(), sys.executable)
    record = json.loads((out / pipeline.STATE).read_text())["stages"][SPLIT]
    assert record["parts"] == 1 and record["seconds"] < 999 and "elsewhere" not in record["cpu"]
