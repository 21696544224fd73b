"""The one precision policy of every entry point (encode, BEIR, Pyserini, train, reproduce, benchmarks).

``auto`` is bf16 on CUDA GPUs with bf16 and on CPUs with native bf16 (AMX-BF16, AVX-512-BF16), fp16 on
older GPUs, float32 elsewhere (on an AVX2-only CPU bf16 is emulated and several times slower than fp32).
Inference runs in that dtype; training keeps float32 master weights and uses autocast in it
(:func:`training_autocast`). :func:`describe_precision` is the line every command logs before its
model loads.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import torch

from llara_retrieval._utils.errors import LlaraError

DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "float32": torch.float32, "fp32": torch.float32, "float": torch.float32}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when available; otherwise the named device, checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise LlaraError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LlaraError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def cuda_has_bf16() -> bool:
    """True when the CUDA GPU runs bf16 natively (Ampere and newer); emulated bf16 does not count."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the keyword
        return bool(torch.cuda.is_bf16_supported())


def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively: AMX-BF16 or AVX-512-BF16 on x86.

    On other x86 CPUs bf16 is emulated (AVX2 only: measured 0.5 vs 28 GFLOP/s for fp32; oneDNN also
    emulates it on AVX-512 without BF16), so bf16 is only the default where the hardware has it. Where
    ``/proc/cpuinfo`` has no x86 flags (e.g. ARM), oneDNN's own check decides.
    """
    isa = cpu_isa()
    if isa != "unknown":
        return isa in ("AMX-BF16", "AVX-512-BF16")
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of ``/proc/cpuinfo`` (its value), or None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith(field)), None)
    except OSError:
        return None


@lru_cache(maxsize=1)
def cpu_isa() -> str:
    """The best matmul ISA of this x86 CPU, from ``/proc/cpuinfo``: ``AMX-BF16``, ``AVX-512-BF16``,
    ``AVX-512``, ``AVX2`` or ``baseline`` (``unknown`` where there are no x86 flags to read)."""
    value = _cpuinfo("flags")
    if value is None:
        return "unknown"
    flags = value.split()
    for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX-512-BF16"), ("avx512f", "AVX-512"),
                       ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "baseline"


@lru_cache(maxsize=1)
def cpu_description() -> str:
    """``"<CPU model> (<ISA>), N cores"``: how benchmark and reproduction records name the machine."""
    import os
    import platform

    name = _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name} ({cpu_isa()}), {cores} cores"


def precision_reason(device: torch.device) -> str:
    """Why ``auto`` picks what it picks on ``device`` (the GPU's name, or the CPU's ISA)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} {'has' if cuda_has_bf16() else 'lacks'} native bf16"
    if device.type != "cpu":
        return f"{device.type}: float32 unless asked"
    return f"CPU {cpu_isa()}: {'native bf16' if cpu_supports_bf16() else 'no native bf16'}"


def training_autocast(device: torch.device) -> str | None:
    """Mixed precision ``auto`` trains in: ``"bf16"`` or ``"fp16"`` autocast over float32 master weights,
    or ``None`` (float32) on a CPU without native bf16 and on other accelerators (MPS, XPU ...)."""
    if device.type == "cuda":
        return "bf16" if cuda_has_bf16() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_supports_bf16() else None
    return None


def describe_precision(device: torch.device, dtype: torch.dtype, autocast: str | None = None,
                       pinned_by: str | None = None) -> str:
    """The line a command logs before its model loads: what it runs in and why.

    Args:
        device: where the model runs.
        dtype: the weights' dtype.
        autocast: ``"bf16"``/``"fp16"`` when training under autocast.
        pinned_by: what pinned the precision (a flag, a spec), when ``auto`` did not choose it.
    """
    what = f"{dtype_name(dtype)} weights, {autocast} autocast" if autocast else dtype_name(dtype)
    why = f"pinned by {pinned_by}; auto: {precision_reason(device)}" if pinned_by else precision_reason(device)
    return f"precision: {what} on {device.type} ({why})"


def log_precision(device: torch.device, dtype: torch.dtype, autocast: str | None = None,
                  pinned_by: str | None = None) -> None:
    """Log :func:`describe_precision` on the package's logger (commands print it; see ``_utils.cli``)."""
    logging.getLogger("llara_retrieval").info(describe_precision(device, dtype, autocast, pinned_by))


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` picks bf16 where the hardware runs it natively (fp16 on older GPUs, fp32 on other CPUs)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if is_auto(dtype):
        if device.type == "cuda":
            return torch.bfloat16 if cuda_has_bf16() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    return parse_dtype(dtype)


def parse_dtype(name: str, what: str = "dtype") -> torch.dtype:
    """The torch dtype a user names (``bf16``, ``bfloat16``, ``float32`` ...); a one-line error otherwise."""
    try:
        return DTYPES[str(name).lower().removeprefix("torch.")]
    except KeyError:
        raise LlaraError(f"{what}: unknown dtype {name!r}: use one of bfloat16, float16, float32") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def is_auto(dtype: str | torch.dtype | None) -> bool:
    """True when ``dtype`` leaves the choice to the policy (None or ``"auto"``)."""
    return dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto")
