"""How a run executes, not what it computes: memory format, compilation, threads, CUDA flags.

These settings change speed, and the last bits of floating-point results (a different
convolution algorithm rounds differently), never the method. They are recorded in the
run's provenance (``runtime``) and shown by ``bench show``, not part of the run's key.
Measured on this project's 2-core CPU (benchmarks/speed.py): channels_last pays for the
convolutional models (1.23-1.27x SmallCNN, 1.09-1.11x ResNet-18 MART/TRADES training), so
it is the default; torch.compile does not pay here (SmallCNN MART: 25 s of compilation,
then 137 images/s against 262 without it), so it is opt-in, for GPUs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Runtime:
    channels_last: bool = True
    compile: bool = False  # torch.compile the training forward (warm-up cost: see speed.py)
    threads: int | None = None  # None: OMP_NUM_THREADS where set, else cores over nproc
    nproc: int = 1  # processes training the run together (bench/train/distributed.py)

    def n_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return env_threads() or max(1, usable_cores() // self.nproc)

    def apply(self, device: str) -> None:
        """Process-wide settings: the thread count, and cuDNN autotuning on CUDA."""
        threads = self.n_threads()
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        # Free on the CPU: its kernels are deterministic already; warn_only keeps a GPU op
        # without a deterministic version from failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.device(device).type == "cuda":
            torch.backends.cudnn.benchmark = True

    def data(self, x: torch.Tensor, y: torch.Tensor, device: str) -> tuple[torch.Tensor, ...]:
        """On a GPU, a small data set (< 2 GiB) moves there once instead of batch by batch."""
        if torch.device(device).type != "cuda" or x.numel() * x.element_size() > 2**31:
            return x, y
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def model(self, model: nn.Module) -> nn.Module:
        """The module the training steps call (the caller keeps ``model`` for its weights)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def record(self) -> dict[str, Any]:
        """What decides the last bits besides the spec (benchmarks/determinism.py measures it):
        threads, memory format, and the CPU kernels' instruction set and oneDNN version."""
        return {
            **asdict(self),
            "torch_threads": self.n_threads(),  # what apply() sets (record may come first)
            "cores": usable_cores(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn": onednn_version(),
        }


def onednn_version() -> str:
    """oneDNN's version as PyTorch's build reports it ("" when it does not)."""
    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            words = [w for w in line.split() if w.startswith("v") and w[1:2].isdigit()]
            return words[0] if words else ""
    return ""


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` when it names a positive count: a user who pins a process to one
    thread (two runs side by side on two cores) keeps it so when a run is trained on the
    way (a transfer surrogate, a teacher), as PyTorch itself would."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def usable_cores() -> int:
    """The cores this process may run on (its affinity), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
