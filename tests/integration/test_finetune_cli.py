"""`python -m llara_retrieval.train finetune` end to end on the tiny model: LoRA adapter and merged
encoder dirs that LlaraEncoder loads with the same vectors, dev nDCG@10 logged and plotted, --resume
after a SIGKILL equal to an uninterrupted run, full fine-tuning with GradCache."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from llara_retrieval import LlaraEncoder
from llara_retrieval.train.finetune import mine
from llara_retrieval.train.finetune import train as finetune
from tests.support.finetune import mini_beir

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KILL_AT_STEP_3 = """
import os, signal, sys
from transformers import TrainerCallback
from llara_retrieval.train.finetune import train as finetune


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            os.kill(os.getpid(), signal.SIGKILL)

sys.exit(finetune.main(sys.argv[1:], callbacks=[Kill()]))
"""


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return mini_beir(tmp_path_factory.mktemp("mini-beir"))


@pytest.fixture(scope="module")
def train_file(beir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mined") / "train.jsonl"
    assert mine.main(["--dataset", str(beir), "--output", str(out), "--depth", "20", "--num_negatives", "4",
                      "--cache_dir", str(out.parent)]) == 0
    return out


def argv(model, data, out, *extra):
    return ["--model_name_or_path", str(model), "--train_data", str(data), "--output_dir", str(out),
            "--train_group_size", "3", "--query_max_len", "48", "--passage_max_len", "64", "--temperature", "0.05",
            "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--logging_steps", "1",
            "--max_steps", "4", "--save_steps", "2", "--seed", "3", "--dataloader_pin_memory", "false",
            "--precision", "float32", *extra]  # tight comparisons; the auto policy is tested in unit/core


LORA = ["--lora", "--lora_r", "4", "--lora_alpha", "8"]


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, train_file, beir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "lora"
    code = finetune.main(argv(tiny_model_dir, train_file, out, *LORA, "--eval_data", str(beir), "--eval_every", "2"))
    assert code == 0
    return out


def test_lora_run_writes_adapter_and_merged_encoder_with_equal_vectors(lora_run, tiny_model_dir):
    from llara_retrieval.beir.model import LlaraBeirModel

    texts = ["boundary layer on a flat plate", "heat transfer in hypersonic flow"]
    merged = LlaraEncoder.from_pretrained(lora_run, device="cpu", dtype="float32")
    adapter = LlaraBeirModel(str(lora_run / "adapter"), device="cpu", dtype="float32")
    base = LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32")
    np.testing.assert_allclose(merged.encode_passages(texts), adapter.encode_corpus(texts), atol=1e-5)
    np.testing.assert_allclose(merged.encode_queries(texts), adapter.encode_queries(texts), atol=1e-5)
    assert np.abs(merged.encode_passages(texts) - base.encode_passages(texts)).max() > 1e-4  # it trained
    spec = json.loads((lora_run / "llara_config.json").read_text())
    assert spec["provenance"]["stage"] == "finetune" and spec["provenance"]["global_step"] == 4
    assert spec["dtype"] is None  # not the training dtype: each machine loads it in its best precision
    assert json.loads((lora_run / "adapter" / "llara_config.json").read_text())["dtype"] is None


def test_loss_and_dev_metric_are_logged_and_plotted(lora_run):
    rows = [json.loads(line) for line in (lora_run / "loss_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    evals = [json.loads(line) for line in (lora_run / "eval_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [2, 4]
    assert all(0 <= e["eval_nDCG@10"] <= 1 for e in evals)
    assert any("eval_nDCG@10" in r for r in rows)
    assert (lora_run / "loss_curve.png").stat().st_size > 1000 and (lora_run / "eval_curve.png").stat().st_size > 1000


def test_resume_after_a_kill_matches_the_uninterrupted_run(lora_run, tiny_model_dir, train_file, tmp_path):
    out = tmp_path / "killed"
    args = argv(tiny_model_dir, train_file, out, *LORA)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_AT_STEP_3, *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoint-2").is_dir() and not (out / "llara_config.json").exists()
    assert finetune.main(args) == 1  # a non-empty output dir needs --resume
    assert finetune.main(args + ["--resume"]) == 0
    done = load_file(lora_run / "adapter" / "adapter_model.safetensors")
    resumed = load_file(out / "adapter" / "adapter_model.safetensors")
    assert done.keys() == resumed.keys()
    for key in done:
        np.testing.assert_allclose(resumed[key].numpy(), done[key].numpy(), atol=1e-6, err_msg=key)
    losses = [[json.loads(line).get("loss") for line in (d / "loss_log.jsonl").read_text().splitlines()
               if "loss" in json.loads(line)] for d in (lora_run, out)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_full_finetuning_with_gradcache(tiny_model_dir, train_file, tmp_path):
    out = tmp_path / "full"
    assert finetune.main(argv(tiny_model_dir, train_file, out, "--grad_cache_chunk_size", "2",
                              "--max_steps", "2")) == 0
    assert not (out / "adapter").exists()
    enc = LlaraEncoder.from_pretrained(out, device="cpu", dtype="float32")
    assert enc.encode_queries(["shock wave"]).shape == (1, 32)
