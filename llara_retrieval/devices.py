"""Device and dtype choices: CUDA when present, bf16 where the hardware runs it well."""
from __future__ import annotations

import torch

from .errors import LlaraError

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


def cpu_supports_bf16() -> bool:
    """True when the CPU has vector units that make bf16 matmuls faster than fp32 (AVX2 or better)."""
    return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "NO AVX", "ZVECTOR", "VSX")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` picks bf16 (fp16 on CUDA without bf16, fp32 on old CPUs); names like "bfloat16" accepted."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    try:
        return DTYPES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        raise LlaraError(f"unknown dtype {dtype!r}: use one of bfloat16, float16, float32") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
