"""Training arithmetic: fp32, or autocast to bf16 / fp16 (fp16 with a gradient scaler).

Only training uses it (the defense's inner attack and its loss). Evaluation attacks stay in
fp32: a low-precision attack can hide gradients, and the audit must stay honest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check(precision: str, device: str) -> None:
    """fp16 autocast needs a GPU here; bf16 runs on CPUs (fast with AVX512-BF16/AMX)."""
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ValueError("fp16 training needs a CUDA device; on a CPU use --precision bf16")


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[None]:
    """Forward passes inside run in ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=DTYPES[precision]):
        yield


ENCODED = ("transform", "net")  # a model behind an input transformation: its two parts


class FloatLogits(nn.Module):
    """The model with its outputs in fp32, so losses never see bf16/fp16 probabilities.

    A softmax rounded to bf16 can exceed 1 (bf16's next value after 1.0 is 1.0078), and
    MART's ``log(1.0001 - p)`` is then NaN: measured, MART on SmallCNN diverged in one of
    three seeds before this cast. The logits are computed in low precision; what the
    objectives do with them is fp32.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).float()

    def __getattr__(self, name: str) -> object:
        """A part of the model BPDA differentiates (``straight_through``, a defense's input
        encoding) stays reachable through the cast (attacks/adaptive.py)."""
        if name == "straight_through" and hasattr(self.inner, name):
            view = self.inner.straight_through
            return lambda: FloatLogits(view())
        if name in ENCODED and isinstance(self.inner, nn.Module) and hasattr(self.inner, name):
            return getattr(self.inner, name)  # LS-PGA's quantiser and network (attacks/lspga.py)
        return super().__getattr__(name)


def step_model(model: nn.Module, precision: str) -> nn.Module:
    return model if precision == "fp32" else FloatLogits(model)


def scaler(precision: str, device: str) -> torch.amp.GradScaler:
    """A gradient scaler, active only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def fast_bf16(device: str) -> bool:
    """Whether bf16 training is fast here: a CUDA device that supports it, or a CPU with
    AVX512-BF16 or AMX (measured on such a CPU: MART 341 bf16 vs 86 fp32 img/s per core;
    without them, bf16 autocast on a CPU can be slower than fp32)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's own probes
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def auto(precision: str, device: str) -> str:
    """``auto``: bf16 where it is fast (``fast_bf16``), else fp32; any other value as is."""
    if precision != "auto":
        return precision
    return "bf16" if fast_bf16(device) else "fp32"
