"""Device and dtype choices: CUDA when present, bf16 where the hardware runs it natively."""
from __future__ import annotations

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


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels for this CPU (AVX-512 BF16, AMX, AVX-512 BW).

    On AVX2-only CPUs PyTorch's bf16 matmul falls back to slow generic code (measured here: 0.5 vs
    28 GFLOP/s for fp32), so bf16 is only the default where the hardware runs it natively.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` picks bf16 where the hardware runs it natively (fp16 on older GPUs, fp32 on other CPUs)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
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
