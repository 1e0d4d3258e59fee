"""One run across processes: data-parallel training (DistributedDataParallel).

Rank 0 leads: it alone holds the run's claim, calls the lease ``check``, reads and writes
the resume state, checkpoints and database rows, and runs the monitor evaluation. It sends
each run it trains to the followers (:func:`announce`: spec, resume state, runtime) and
dismisses them when done (:func:`dismiss`); they (:func:`serve`) train and write nothing.

Every rank walks the same global batch order (``Batches`` with ``shard``) and takes rows
``[lo, hi)`` of each global batch. Random draws made per example during a step (the
inner attack's random start, dropout masks) are drawn for the global batch and sliced
(:func:`draws`), so each example sees the noise it would see in one process. A loss that
is a batch mean is weighted by the shard's share (:func:`weighted`): DDP's average of the
ranks' gradients is then the global batch's gradient, also when the last batch does not
split evenly (its shards differ by one example at most).

Decisions are collective. Each step, rank 0's ``check`` and every rank's loss are agreed
on (:func:`agree`); the end of an epoch runs on rank 0 and its outcome is broadcast
(:func:`on_lead`). A lost claim, an error on rank 0 or a non-finite loss thus stops the
whole group: rank 0 raises the error, followers raise :class:`Stopped` and wait for the
next run. Messages and flags go over gloo (a second group when gradients use NCCL).

BatchNorm: on CUDA the model's BatchNorm layers become SyncBatchNorm (statistics over the
global batch, as in one process). PyTorch's SyncBatchNorm runs on GPUs only, so on a CPU
each rank normalises its shard by its own statistics and the running statistics are rank
0's (DDP broadcasts them): a BatchNorm model trained on N CPU processes is not the
one-process run. Models without BatchNorm (SmallCNN) match it within float tolerance.
"""

from __future__ import annotations

import datetime
import gc
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from bench.train.draws import GlobalDraws

T = TypeVar("T")
# Followers wait while rank 0 waits for a claim, evaluates or trains a labeller.
TIMEOUT = datetime.timedelta(days=7)
Span = tuple[int, int, int]  # rows [lo, hi) of a global batch of n


class Stopped(RuntimeError):
    """Raised on a follower when rank 0 stops the run (lost claim, error, non-finite loss)."""


@dataclass
class Group:
    rank: int
    world: int
    device: str
    control: Any  # the gloo group that carries messages and flags
    busy: bool = False  # followers are inside a run (not waiting in serve)


_GROUP: Group | None = None


def current() -> Group | None:
    return _GROUP


def world() -> int:
    return 1 if _GROUP is None else _GROUP.world


def leads() -> bool:
    """Whether this process writes: the only one, or rank 0 of a group."""
    return _GROUP is None or _GROUP.rank == 0


def init(rank: int, size: int, device: str, store: Any = None) -> Group:
    """Join a group of ``size`` processes: through ``store``, else torchrun's environment."""
    global _GROUP
    cuda = torch.device(device).type == "cuda"
    if cuda:  # one GPU per process
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=TIMEOUT)
    control = dist.new_group(backend="gloo", timeout=TIMEOUT) if cuda else dist.group.WORLD
    _GROUP = Group(rank, size, device, control)
    return _GROUP


def close() -> None:
    """Leave the group: what still holds it (a DDP wrapper in a reference cycle) is
    collected first, then the group is destroyed, while the interpreter is fully alive."""
    global _GROUP
    if _GROUP is not None:
        _GROUP = None
        gc.collect()
        dist.destroy_process_group()


def device(asked: str) -> str:
    """The device this process trains on: in a group, its own GPU (or the CPU)."""
    return asked if _GROUP is None else _GROUP.device


def _bcast(obj: Any) -> Any:
    assert _GROUP is not None
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_GROUP.control)
    return box[0]


def check(n_train: int, batch_size: int, stateful: bool) -> None:
    """What a group cannot train: a batch too small to give every rank an example, and
    defenses with per-example state (each rank would update only its shard's)."""
    if _GROUP is None:
        return
    last = n_train % batch_size or batch_size
    if min(batch_size, n_train, last) < _GROUP.world:
        raise ValueError(
            f"{_GROUP.world} processes need at least {_GROUP.world} examples in every batch; "
            f"batch size {batch_size} over {n_train} examples leaves a last batch of {last}"
        )
    if stateful:
        raise ValueError("this defense keeps per-example state: train it in one process")


def announce(message: dict[str, Any]) -> None:
    """Rank 0: send the followers the run to train (a no-op alone)."""
    if _GROUP is not None and _GROUP.rank == 0:
        _bcast(message)
        _GROUP.busy = True


def finished() -> None:
    """Rank 0: the run ended on every rank at once (normally, or at an agreed stop)."""
    if _GROUP is not None:
        _GROUP.busy = False


def dismiss() -> None:
    """Rank 0: no more runs; the followers return. Skipped when they are inside a run
    (rank 0 left it through an error of its own): its exit then ends their collectives."""
    if _GROUP is not None and _GROUP.rank == 0 and not _GROUP.busy:
        _bcast(None)


def serve(handle: Callable[[dict[str, Any]], None]) -> None:
    """A follower: ``handle`` each run rank 0 announces, until it dismisses the group."""
    while (message := _bcast(None)) is not None:
        try:
            handle(message)
        except Stopped:
            continue


def on_lead(fn: Callable[[], None]) -> None:
    """``fn`` on rank 0 (its end of an epoch); an error there stops every rank."""
    g = _GROUP
    if g is None:
        fn()
        return
    if g.rank != 0:
        if not _bcast(None):
            g.busy = False
            raise Stopped("rank 0 stopped the run")
        return
    try:
        fn()
    except BaseException:
        _bcast(False)
        g.busy = False
        raise
    _bcast(True)


def agree(check: Callable[[], None] | None, finite: bool) -> bool:
    """Once a step: rank 0's ``check`` raises there (its error) and on followers
    (:class:`Stopped`); returns whether every rank's loss is finite (followers stop if not)."""
    g = _GROUP
    if g is None:
        if check is not None:
            check()
        return finite
    error = None
    if g.rank == 0 and check is not None:
        try:
            check()
        except BaseException as e:  # raised below, once the followers know
            error = e
    flags = torch.tensor([float(error is not None), float(not finite)])
    dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=g.control)
    if flags.any():
        g.busy = False
    if error is not None:
        raise error
    if flags[0] > 0 or (flags[1] > 0 and g.rank != 0):
        raise Stopped("rank 0 stopped the run")
    return not bool(flags[1] > 0)


def all_sum(values: list[float]) -> list[float]:
    if _GROUP is None:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, group=_GROUP.control)
    return t.tolist()


def prepare(model: nn.Module) -> nn.Module:
    """On CUDA in a group, BatchNorm becomes SyncBatchNorm (same parameters and buffers)."""
    if _GROUP is None or torch.device(_GROUP.device).type != "cuda":
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap(model: nn.Module) -> nn.Module:
    """The module the loss calls: DDP in a group (it averages the gradients), else ``model``."""
    if _GROUP is None:
        return model
    cuda = torch.device(_GROUP.device).type == "cuda"
    ids = [torch.device(_GROUP.device).index] if cuda else None
    return DistributedDataParallel(model, device_ids=ids)


def shard() -> tuple[int, int]:  # (rank, world)
    return (0, 1) if _GROUP is None else (_GROUP.rank, _GROUP.world)


def weighted(loss: torch.Tensor, span: Span) -> torch.Tensor:
    """A batch-mean loss scaled so that DDP's average over ranks is the global mean."""
    share = _share(span)
    return loss if share == 1 else loss * share


def average(span: Span) -> Callable[[list[torch.Tensor]], None] | None:
    """In a group: a function that replaces per-rank batch-mean gradients, in place, by
    the global batch's (weighted as :func:`weighted`, summed over ranks); else None."""
    if _GROUP is None:
        return None

    def reduce(tensors: list[torch.Tensor]) -> None:
        for t in tensors:
            dist.all_reduce(t.mul_(_share(span) / world()))

    return reduce


def _share(span: Span) -> float:
    lo, hi, n = span
    return (hi - lo) * world() / n


def draws(span: Span) -> Any:
    """Within: per-example random draws come from the global batch's (bench/train/draws.py)."""
    lo, hi, n = span
    return nullcontext() if hi - lo == n else GlobalDraws(lo, hi, n)
