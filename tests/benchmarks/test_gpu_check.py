"""``benchmarks/gpu_check.sh`` is run once, unattended, on a lent GPU machine with a few minutes of device time:
a broken step would waste them. Here every step of the same script runs on a tiny model on the CPU, in bf16 as
there (a bf16 model, the float32 reference worker, bf16 master weights under LoRA and gradient checkpointing),
with small shapes, from the files ``make gpu-files`` copies, and each benchmark's result line must come out."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.released import RELEASED

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (RELEASED / "tokenizer.model").is_file(), reason=f"no tokenizer at {RELEASED}")]


def test_gpu_check_script_runs_every_step_on_a_tiny_model(tmp_path):
    files = tmp_path / "files"
    shutil.copytree(RELEASED, files / "llama2-llara")
    corpus = RELEASED.parents[1] / "beir" / "scifact" / "corpus.jsonl"
    (files / "corpus.jsonl").write_text("".join(corpus.open(encoding="utf-8").readlines()[:40]), encoding="utf-8")
    env = {**os.environ, "PY": sys.executable, "FILES": str(files), "WORK": str(tmp_path / "work"), "ARCH": "tiny",
           "DEVICE": "cpu", "DTYPE": "bfloat16", "DOCS": "8", "FT_BATCH": "2", "FT_GROUP": "2", "FT_LEN": "64",
           "PEAK_N": "256"}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout
    assert "random_model: tiny (bfloat16) written to" in log
    assert re.search(r"^speed ratio \(a\)/\(b\), medians: \d+\.\d\dx$", log, re.M), log
    rows = {m.group(1): float(m.group(2)) for m in
            re.finditer(r"^\((a|b)\) .*?(\d\.\d\de[-+]\d\d)$", log, re.M)}  # cosine distance to float32
    assert set(rows) == {"a", "b"} and max(rows.values()) < 2e-2, log  # bf16 vs float32, random weights
    assert re.search(r"^ +bf16: step \d+\.\d+ s, \d+ tokens/s, step peak memory \d+ MB", log, re.M), log
    assert "query ids [2, " in log and "passage ids [4, " in log
    assert re.search(r"^gpu_check: done in \d+ s$", log, re.M)
    assert not (tmp_path / "work").exists()  # the 7B model's 13 GB would not be left on the machine
