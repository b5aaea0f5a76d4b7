"""Which float format the networks run in when embedding: float32 (the default), or bfloat16 where
the processor computes it natively.

The front ends (STFTs, filter banks, the DCT) always run in float32 or float64: they feed
logarithms and peak tests. Only the MobileNet and the transformers run in bfloat16, under
torch.autocast; their vectors stay within a cosine of 0.9998 of float32's, and the retrieval
figures within 0.001 (benchmarks/results/precision.md). "auto" picks bfloat16 where it is native
(AVX-512 BF16 or AMX on x86, a GPU that has it), float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from .config import PRECISIONS


def native_bfloat16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 matrix products natively (emulated ones are slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    # torch.cpu's checks are private: a torch without them counts as a processor without bfloat16.
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The dtype the networks run in for `precision` on `device`; None for float32. bfloat16 asked for
    where it is not native falls back to float32, with a warning."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "float32":
        return None
    if native_bfloat16(device):
        return torch.bfloat16
    if precision == "bfloat16":
        warnings.warn(
            f"bfloat16 is not native on this {torch.device(device).type} (it would be slower): embedding in float32",
            stacklevel=3,
        )
    return None


def networks_in(dtype: torch.dtype | None, device: torch.device | str):
    """The context the networks run in: autocast to `dtype`, or nothing for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def front_end_precision(forward):
    """A front end's forward, run outside any autocast: its filter banks and DCT feed logarithms."""

    @functools.wraps(forward)
    def in_full_precision(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(waveform.device.type, enabled=False):
            return forward(self, waveform)

    return in_full_precision
