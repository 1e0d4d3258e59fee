"""Work per image and the machine's peak, for benchmarks/speed.py's "fraction of peak".

- ``train_flops_per_image``: the floating-point operations of one training epoch of
  bench's loop (the inner attack's forward and backward passes, the loss, the update),
  counted with PyTorch's FLOP formulas (``torch.utils.flop_counter``: matrix products and
  convolutions, forward and backward; element-wise work is not counted, so the fraction
  is a lower bound), per training image: the difference between epochs on two subset
  sizes, so that the epoch's fixed work (the monitor's PGD-20 on its test point) drops
  out.
  ``FlopCounterMode`` itself cannot be used: its per-module hooks break ``autograd.grad``
  on the attack's input.
- ``peak_gflops``: a square matrix product (2048 x 2048 by default) in the given dtype,
  repeated on the threads this process uses: the rate the machine's matrix units reach
  on work with no overhead, the denominator of the fraction.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from bench.spec.run import RunSpec
from bench.train.loop import train
from bench.train.runtime import Runtime

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class _Count(TorchDispatchMode):
    """Adds up the FLOP formula of every operator that has one."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def train_flops_per_image(spec: RunSpec, device: str = "cpu") -> float:
    """FLOPs per training image of ``spec``'s training step: one epoch on its subset and
    one on twice as many, differenced (the monitor's fixed cost drops out)."""
    totals = []
    for n in (spec.train_subset, 2 * spec.train_subset):
        counter = _Count()
        with tempfile.TemporaryDirectory() as tmp, counter:
            one = dataclasses.replace(spec, train_subset=n)
            train(one, Path(tmp), device=device, progress=False, runtime=Runtime())
        totals.append(counter.total)
    return (totals[1] - totals[0]) / spec.train_subset


def peak_gflops(precision: str = "fp32", device: str = "cpu", n: int = 2048) -> float:
    """GFLOP/s of an ``n`` x ``n`` matrix product in ``precision`` on ``device``, the best
    of 10 after a warm-up."""
    a = torch.randn(n, n, device=device).to(DTYPES[precision])
    b = torch.randn(n, n, device=device).to(DTYPES[precision])
    torch.mm(a, b)  # warm-up: kernel selection, page faults
    best = float("inf")
    for _ in range(10):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
