"""The one precision policy: ``auto`` is bf16 where the hardware runs it natively (mocked both ways),
explicit choices win, and every command logs the precision it runs in and why."""
import logging

import pytest
import torch

from llara_retrieval import LlaraEncoder
from llara_retrieval._utils.cli import run_cli
from llara_retrieval.core import precision
from llara_retrieval.train.arguments import LlaraTrainingArguments


@pytest.fixture(params=[True, False], ids=["bf16-native-cpu", "avx2-cpu"])
def native(request, monkeypatch) -> bool:
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: request.param)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    return request.param


def test_auto_dtype_follows_the_cpu(native):
    cpu = torch.device("cpu")
    assert precision.resolve_dtype(None, cpu) == (torch.bfloat16 if native else torch.float32)
    assert precision.resolve_dtype("auto", cpu) == precision.resolve_dtype(None, cpu)
    assert precision.resolve_dtype("float32", cpu) == torch.float32
    assert precision.training_autocast(cpu) == ("bf16" if native else None)


def test_training_under_auto_uses_bf16_autocast_only_where_native(native, tmp_path):
    args = LlaraTrainingArguments(output_dir=str(tmp_path))
    assert args.bf16 is native and not args.fp16
    assert args.autocast == ("bf16" if native else None) and args.precision_pinned_by is None
    if native:
        assert args.use_cpu  # HF accepts bf16 on a machine without a bf16 GPU only when told it runs on the CPU


def test_explicit_choices_win_over_auto(native, tmp_path):
    fp32 = LlaraTrainingArguments(output_dir=str(tmp_path), precision="float32")
    assert not fp32.bf16 and fp32.autocast is None and fp32.precision_pinned_by == "--precision float32"
    bf16 = LlaraTrainingArguments(output_dir=str(tmp_path), bf16=True)
    assert bf16.autocast == "bf16" and bf16.precision_pinned_by == "--bf16"


def test_unknown_precision_is_a_one_line_error(tmp_path):
    with pytest.raises(precision.LlaraError, match="--precision must be one of auto, float32, not 'half'"):
        LlaraTrainingArguments(output_dir=str(tmp_path), precision="half")


@pytest.mark.parametrize("flags, isa", [("fpu avx2 fma", "AVX2"), ("avx2 avx512f avx512bw", "AVX-512"),
                                        ("avx2 avx512f avx512_bf16", "AVX-512-BF16"),
                                        ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AMX-BF16"),
                                        ("fpu sse2", "baseline")])
def test_cpu_isa_reads_the_best_flag(flags, isa, monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path,
                                                                         *a, **k))
    precision.cpu_isa.cache_clear()
    try:
        assert precision.cpu_isa() == isa
    finally:
        precision.cpu_isa.cache_clear()


@pytest.mark.parametrize("isa, native", [("AMX-BF16", True), ("AVX-512-BF16", True), ("AVX-512", False),
                                         ("AVX2", False), ("baseline", False)])
def test_native_bf16_means_amx_or_avx512_bf16_on_x86(isa, native, monkeypatch):
    """oneDNN also runs bf16 on AVX-512 without BF16, emulated: auto does not count that as native."""
    monkeypatch.setattr(precision, "cpu_isa", lambda: isa)
    assert precision.cpu_supports_bf16() is native


def test_the_precision_line_says_what_and_why(native):
    cpu = torch.device("cpu")
    line = precision.describe_precision(cpu, torch.float32, "bf16")
    assert line.startswith("precision: float32 weights, bf16 autocast on cpu (CPU ")
    assert line.endswith("no native bf16)") is not native
    pinned = precision.describe_precision(cpu, torch.float32, pinned_by="--precision float32")
    assert pinned.startswith("precision: float32 on cpu (pinned by --precision float32; auto: CPU ")


def test_every_command_prints_the_precision_line_first(native, tiny_model_dir, capsys):
    def body():
        LlaraEncoder.from_pretrained(tiny_model_dir, device="cpu")

    assert run_cli("llara-test", body) == 0
    lines = capsys.readouterr().err.splitlines()
    want = "bfloat16" if native else "float32"
    assert lines[0].startswith(f"llara-test: precision: {want} on cpu (CPU "), lines
    assert logging.getLogger("llara_retrieval").handlers == []  # the command's handler is gone afterwards
