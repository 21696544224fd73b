"""Run the reproduction plan: one subprocess per stage, resumable, every command and wall time recorded.

``<output>/reproduce.json`` records each finished stage (its command, seconds, CPU, finish time). A stage is
skipped when its record holds the same command and nothing it depends on ran again, so a run can be
finished over several sessions (or machines) by rerunning the same command; training stages pass
``--resume``, so an interrupted one continues from its last checkpoint, and evaluation reuses cached
corpus embeddings chunk by chunk. The time an interrupted attempt spent counts in the stage's wall time:
``unfinished`` in the state holds it, saved when an attempt starts (the earlier parts' time), at its first
output after each ``HEARTBEAT_S`` seconds, and when it fails or is interrupted; so a stage finished in parts
reports its whole cost and how many parts it took. After the dense stages, the dev split chooses what the hybrid fuses
(recorded as ``selection``). The report is rewritten after each stage.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from llara_retrieval._utils.atomic import atomic_write
from llara_retrieval._utils.errors import LlaraError
from llara_retrieval.beir.run import run_path
from llara_retrieval.core.precision import cpu_description
from llara_retrieval.reproduce.report import write_report
from llara_retrieval.reproduce.selection import choose_hybrid_from_files
from llara_retrieval.reproduce.stages import (
    DEV,
    UNFINISHED,
    ReproduceConfig,
    Stage,
    dataset_name,
    hybrid_stage,
    plan,
    runs_dir,
    split_dataset,
)
from llara_retrieval.retrieval.data import qrels_file

STATE = "reproduce.json"
TOOL = "llara-reproduce"
HEARTBEAT_S = 60.0


def _say(message: str) -> None:
    print(f"{TOOL}: {message}", file=sys.stderr, flush=True)


def load_state(output: Path) -> dict:
    """The state of a previous run in ``output``; refuses a non-empty folder this tool did not create."""
    path = output / STATE
    if path.is_file():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LlaraError(f"{path}: not a {TOOL} state file ({exc})") from None
        if state.get("tool") != TOOL:
            raise LlaraError(f"{path}: not written by {TOOL}")
        return state
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise LlaraError(f"{output}: exists and was not written by {TOOL} (choose another --output)")
    return {"tool": TOOL, "stages": {}}


def _save_state(output: Path, state: dict) -> None:
    atomic_write(output / STATE, json.dumps(state, indent=1) + "\n")


def _run_logged(argv: list[str], log: Path, tick: Callable[[], None]) -> int:
    """Run ``argv``, copying its output (progress bars included) to the console and to ``log``, flushed piece by
    piece (the log shows a running stage's progress); ``tick`` is called after each piece of output."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        while chunk := proc.stdout.read1(4096):
            sink.write(chunk)
            sink.flush()
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            tick()
        return proc.wait()


class _StageClock:
    """The wall time of one stage over all its parts: the earlier parts' seconds (``unfinished`` in the state)
    plus this part's. Written back to the state when the part starts, at its first output after each
    ``HEARTBEAT_S`` seconds (a killed part loses only the time since) and when it fails or is interrupted."""

    def __init__(self, name: str, command: str, state: dict, output: Path, earlier: dict | None) -> None:
        self.name, self.command, self.state, self.output = name, command, state, output
        self.carried, self.parts = (earlier["seconds"], earlier["parts"] + 1) if earlier else (0.0, 1)
        self.cpus = list(dict.fromkeys([*(earlier["cpus"] if earlier else []), cpu_description()]))  # one a machine
        self.start = self.saved = time.perf_counter()

    def seconds(self) -> float:
        return round(self.carried + time.perf_counter() - self.start, 1)

    def save(self) -> None:
        self.saved = time.perf_counter()
        self.state.setdefault(UNFINISHED, {})[self.name] = {"command": self.command, "seconds": self.seconds(),
                                                            "parts": self.parts, "cpus": self.cpus}
        _save_state(self.output, self.state)

    def heartbeat(self) -> None:
        if time.perf_counter() - self.saved >= HEARTBEAT_S:
            self.save()

    def finish(self) -> dict:
        """The finished stage's time fields; its unfinished record is dropped."""
        self.state.get(UNFINISHED, {}).pop(self.name, None)
        return {"seconds": self.seconds(), "parts": self.parts, "cpu": "; ".join(self.cpus)}


def _resumable(stage: Stage, command: str, record: dict | None, state: dict, rerun: set[str]) -> dict | None:
    """The unfinished record this attempt continues, or None when it starts afresh (removing the stage's old
    output): new settings or inputs (a finished ``record`` being redone) never resume old work."""
    earlier = state.get(UNFINISHED, {}).get(stage.name)
    if record or rerun.intersection(stage.after):
        if stage.output:
            shutil.rmtree(stage.output, ignore_errors=True)
        return None
    return earlier if earlier and earlier["command"] == command else None


def _run_stage(stage: Stage, config: ReproduceConfig, state: dict, rerun: set[str], python: str) -> None:
    output = Path(config.output)
    record = state["stages"].get(stage.name)
    command = stage.command()
    if record and record["command"] == command and not rerun.intersection(stage.after):
        _say(f"{stage.name}: done before ({record['seconds']:.0f} s), skipped")
        return
    earlier = _resumable(stage, command, record, state, rerun)
    clock = _StageClock(stage.name, command, state, output, earlier)
    state["stages"].pop(stage.name, None)
    log = output / "logs" / f"{stage.name}.log"
    resumed = f"; resumed, {clock.carried:.0f} s spent before" if earlier else ""
    _say(f"{stage.name}: {command}  (log: {log}){resumed}")
    clock.save()  # the earlier parts' time is on disk before this part can be killed
    try:
        status = _run_logged([python, "-m", *stage.argv], log, clock.heartbeat)
    except BaseException:  # interrupted (Ctrl-C): keep the time this attempt spent
        clock.save()
        raise
    if status != 0:
        clock.save()
        raise LlaraError(f"stage {stage.name} failed with exit status {status} (log: {log}); "
                         "fix the cause and run the same command again to resume")
    state["stages"][stage.name] = {"command": command, **clock.finish(), "system": stage.system,
                                   "split": stage.split, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _save_state(output, state)
    rerun.add(stage.name)
    _say(f"{stage.name}: finished in {state['stages'][stage.name]['seconds']:.0f} s")


def choose_on_dev(config: ReproduceConfig, stages: list[Stage]) -> tuple[Stage | None, dict]:
    """The dense system, normalisation and linear weight the dev split prefers for the hybrid; returns that
    system's test evaluation stage (``None`` in a dev-only run) and the recorded choice. The candidates are the
    dense systems with a test evaluation, or in a dev-only run (``--no-test``) every dense system evaluated on
    dev."""
    tested = {s.system: s for s in stages if s.split == config.eval_split and s.encoder}
    runs, name = runs_dir(config), dataset_name(config)
    dense = {s.system: run_path(runs, name, DEV, s.system) for s in stages
             if s.split == DEV and s.encoder and (s.system in tested or not config.test)}
    choice = choose_hybrid_from_files(qrels_file(split_dataset(config), DEV),
                                      run_path(runs, name, DEV, "bm25"), dense, config.hybrid_weights,
                                      config.hybrid_normalisations)
    return tested.get(choice.system), choice.to_dict()


def reproduce(config: ReproduceConfig, python: str | None = None) -> Path:
    """Run (or resume) every stage, then write the report; returns ``<output>/results.md``."""
    output = Path(config.output)
    state = load_state(output)
    output.mkdir(parents=True, exist_ok=True)
    state["config"] = config.to_dict()
    stages = plan(config)
    names = [s.name for s in stages] + ["hybrid"]
    if config.until is not None and config.until not in names:
        raise LlaraError(f"--until {config.until}: no such stage (stages: {', '.join(names)})")
    rerun: set[str] = set()
    python = python or sys.executable
    for stage in stages:
        _run_stage(stage, config, state, rerun, python)
        write_report(config, state)
        if stage.name == config.until:
            _say(f"stopped after {stage.name} (--until); run again with a later --until, or without, to go on")
            return output / "results.md"
    chosen, state["selection"] = choose_on_dev(config, stages)
    _save_state(output, state)
    if config.test:
        stage = hybrid_stage(config, chosen.encoder, state["selection"]["weight"], state["selection"]["normalisation"],
                             after=(chosen.name, "bm25"))
        _run_stage(stage, config, state, rerun, python)
    state["total_seconds"] = round(sum(r["seconds"] for n, r in state["stages"].items() if n in names), 1)
    _save_state(output, state)
    return write_report(config, state)
