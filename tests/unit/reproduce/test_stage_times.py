"""A stage finished in parts reports the time of every part: ``_run_stage`` on a real subprocess that fails
once, is rerun and finishes; the time of the unfinished attempt is on disk while it runs (so a killed
attempt keeps its count) and in the report."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.reproduce import pipeline
from llara_retrieval.reproduce.report import _times
from llara_retrieval.reproduce.stages import SPLIT, UNFINISHED, ReproduceConfig, Stage, plan

# attempt 1 exits 3, attempt 2 exits 0. Each first waits (printing) until the state file holds its running
# attempt with at least ``sys.argv[3]`` seconds, and prints what it saw.
FLAKY = """
import json, sys, time
from pathlib import Path
marker, state, least = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
attempt = int(marker.read_text()) + 1 if marker.exists() else 1
marker.write_text(str(attempt))
deadline = time.time() + 20
while time.time() < deadline:
    running = json.loads(state.read_text()).get("unfinished", {}).get("split")
    if running and running["parts"] == attempt and running["seconds"] >= least:
        print("SEEN", attempt, running["seconds"], flush=True)
        break
    print("waiting", flush=True)
    time.sleep(0.1)
time.sleep(0.5)
sys.exit(0 if attempt >= 2 else 3)
"""


def seen(log: Path) -> dict[int, float]:
    return {int(a): float(s) for a, s in re.findall(r"^SEEN (\d) ([\d.]+)$", log.read_text(), re.M)}


def test_a_stage_finished_in_two_parts_counts_both(tmp_path, monkeypatch):
    (tmp_path / "flaky_stage.py").write_text(FLAKY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    config = ReproduceConfig(dataset=str(tmp_path / "scifact"), pretrain_text=["pairs.jsonl"], output=str(out))
    argv = ("flaky_stage", str(tmp_path / "attempts"), str(out / pipeline.STATE))
    log = out / "logs" / "split.log"

    # part 1: the heartbeat (every output, here) keeps the running time on disk; the stage then fails
    monkeypatch.setattr(pipeline, "HEARTBEAT_S", 0.0)
    stage = Stage(SPLIT, (*argv, "0.3"))
    with pytest.raises(LlaraError, match="stage split failed with exit status 3"):
        pipeline._run_stage(stage, config, {"tool": pipeline.TOOL, "stages": {}}, set(), sys.executable)
    assert seen(log)[1] >= 0.3
    first = json.loads((out / pipeline.STATE).read_text())
    assert SPLIT not in first["stages"]
    part = first["unfinished"][SPLIT]
    assert part["parts"] == 1 and part["seconds"] >= 0.8 and part["command"] == stage.command()
    planned = next(s for s in plan(config) if s.name == SPLIT).command()

    def listed_as_started(state: dict) -> bool:
        return any(line.startswith("Started, not finished") and "split (" in line for line in _times(config, state))

    assert not listed_as_started(first)  # this attempt's command is not the plan's split command
    assert listed_as_started({**first, UNFINISHED: {SPLIT: {**part, "command": planned}}})

    # part 2 (same command, no heartbeat): part 1's time is on disk from the start, so a kill cannot lose it
    monkeypatch.setattr(pipeline, "HEARTBEAT_S", 1e9)
    pipeline._run_stage(stage, config, first, set(), sys.executable)
    assert seen(log)[2] >= part["seconds"]
    final = json.loads((out / pipeline.STATE).read_text())
    record = final["stages"][SPLIT]
    assert record["parts"] == 2 and record["seconds"] >= part["seconds"] + 0.5
    assert SPLIT not in final["unfinished"]
    assert any(line.startswith("| split |") and "(2 parts)" in line for line in _times(config, final))


@pytest.mark.parametrize("why", ["changed command", "upstream stage ran again"])
def test_work_that_is_not_resumed_does_not_count(tmp_path, why):
    out = tmp_path / "out"
    out.mkdir()
    config = ReproduceConfig(dataset=str(tmp_path / "scifact"), pretrain_text=["pairs.jsonl"], output=str(out))
    stage = Stage(SPLIT, ("json.tool", "--help"), after=("pretrain",))
    old = "python -m something else" if why == "changed command" else stage.command()
    state = {"tool": pipeline.TOOL, "stages": {},
             "unfinished": {SPLIT: {"command": old, "seconds": 999.0, "parts": 4, "cpus": ["elsewhere"]}}}
    rerun = {"pretrain"} if why == "upstream stage ran again" else set()
    pipeline._run_stage(stage, config, state, rerun, sys.executable)
    record = json.loads((out / pipeline.STATE).read_text())["stages"][SPLIT]
    assert record["parts"] == 1 and record["seconds"] < 999 and "elsewhere" not in record["cpu"]


def test_a_running_stage_log_shows_its_output_at_once(tmp_path):
    """The stage log is flushed piece by piece: each piece of output is in the file when ``tick`` runs."""
    log = tmp_path / "logs" / "stage.log"
    program = "import sys, time\nfor i in range(3):\n    sys.stdout.write(f'step {i}\\n')\n    sys.stdout.flush()\n" \
              "    time.sleep(0.2)\n"
    in_file: list[str] = []
    status = pipeline._run_logged([sys.executable, "-c", program], log, lambda: in_file.append(log.read_text()))
    assert status == 0
    assert in_file[0].startswith("step 0")  # without the flush, the file was still empty here
    assert log.read_text() == "step 0\nstep 1\nstep 2\n"
