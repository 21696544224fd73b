"""pretrain end to end on a tiny model: encoder dir output (full and LoRA), resume after a kill,
torchrun with 2 CPU processes == 1 process with the same global batch."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from llara_retrieval.core.encoder import LlaraEncoder
from llara_retrieval.train.pretrain import train as pretrain
from tests.support.tiny import build_tiny_model, cranfield_texts, write_pretrain_data

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["flow over a flat plate", "heat transfer in hypersonic flight"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, cranfield_dir):
    texts = [t for t in cranfield_texts(40) if t][:17]
    return write_pretrain_data(tmp_path_factory.mktemp("pretrain-train") / "train.jsonl", texts)


def cli(model, data, out, *extra):
    return ["--model_name_or_path", str(model), "--train_data", str(data), "--output_dir", str(out),
            "--max_length", "75", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--save_steps", "2", "--seed", "7", "--disable_tqdm", "true",
            "--precision", "float32", *extra]  # tight comparisons; the auto policy is tested in unit/core


def weights(path):
    return load_file(str(Path(path) / "model.safetensors"))


def assert_same_weights(a, b, atol=1e-6):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=atol, msg=key)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_model_dir, data_file):
    out = tmp_path_factory.mktemp("full") / "out"
    assert pretrain.main(cli(tiny_model_dir, data_file, out, "--max_steps", "4")) == 0
    return out


def test_full_run_writes_an_encoder_dir(full_run, tiny_model_dir, data_file):
    rows = [json.loads(line) for line in (full_run / "loss_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert all({"ebae", "ebar", "lm"} <= r.keys() for r in rows if "loss" in r)
    assert (full_run / "loss_curve.png").stat().st_size > 1000
    trained = LlaraEncoder.from_pretrained(full_run, device="cpu", dtype="float32")
    base = LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32")
    assert trained.spec.provenance["stage"] == "pretrain"
    assert trained.spec.dtype is None  # not the training dtype: each machine loads it in its best precision
    checkpoint = LlaraEncoder.from_pretrained(full_run / "checkpoint-4", device="cpu", dtype="float32")
    torch.testing.assert_close(torch.tensor(checkpoint.encode_passages(TEXTS)),
                               torch.tensor(trained.encode_passages(TEXTS)))
    assert not torch.allclose(torch.tensor(trained.encode_passages(TEXTS)), torch.tensor(base.encode_passages(TEXTS)))
    # Never write into a non-empty output dir unasked.
    assert pretrain.main(cli(tiny_model_dir, data_file, full_run, "--max_steps", "1")) == 1


class Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt


def test_resume_after_kill_matches_uninterrupted_run(full_run, tmp_path, tiny_model_dir, data_file, capsys):
    out = tmp_path / "out"
    args = cli(tiny_model_dir, data_file, out, "--max_steps", "4")
    assert pretrain.main(args, callbacks=[Crash()]) == 1
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint-2").is_dir() and not (out / "llara_config.json").exists()
    assert pretrain.main(args + ["--resume"]) == 0
    assert_same_weights(full_run, out)
    steps = [json.loads(line)["step"] for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert [s for s in steps if s] == sorted(s for s in steps if s)


def test_lora_run_writes_merged_dir_and_adapter_dir(tmp_path, tiny_model_dir, data_file):
    out = tmp_path / "lora"
    assert pretrain.main(cli(tiny_model_dir, data_file, out, "--max_steps", "2", "--lora", "--lora_r", "4",
                             "--lora_alpha", "8", "--lora_dropout", "0", "--save_strategy", "no",
                             "--gradient_checkpointing")) == 0
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "adapter" / "llara_config.json").is_file()
    merged = LlaraEncoder.from_pretrained(out, device="cpu", dtype="float32").encode_queries(TEXTS)
    adapter = LlaraEncoder.from_pretrained(out / "adapter", device="cpu", dtype="float32").encode_queries(TEXTS)
    base = LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu", dtype="float32").encode_queries(TEXTS)
    torch.testing.assert_close(torch.tensor(merged), torch.tensor(adapter), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(torch.tensor(merged), torch.tensor(base))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.torchrun
@pytest.mark.parametrize("family", ["llama", "qwen2"])  # untied; tied (the embedding's gradient is sparse)
def test_torchrun_two_processes_match_one(tmp_path, tiny_model_dir, data_file, family):
    model = tiny_model_dir if family == "llama" else build_tiny_model(tmp_path / "model", family)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # Adam turns a gradient near zero into a whole learning-rate step of its sign, so float32 summation order
    # (which differs between a batch of 4 and two of 2, and between CPUs' kernels) would decide those weights;
    # a larger epsilon keeps the comparison about the gradients (a factor 2 in them still moves weights by ~1e-4)
    common = ["--max_steps", "3", "--save_strategy", "no", "--use_cpu", "true", "--adam_epsilon", "1e-3"]
    single = cli(model, data_file, tmp_path / "single", *common)
    single[single.index("--per_device_train_batch_size") + 1] = "4"
    two = cli(model, data_file, tmp_path / "two", *common, "--ddp_backend", "gloo")
    module = [sys.executable, "-m"]
    subprocess.run(module + ["llara_retrieval.train", "pretrain", *single], check=True, env=env, cwd=ROOT,
                   capture_output=True)
    run = subprocess.run(module + ["torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                                   str(free_port()), "-m", "llara_retrieval.train", "pretrain", *two],
                         env=env, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_same_weights(tmp_path / "single", tmp_path / "two", atol=1e-5)
