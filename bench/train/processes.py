"""Starting the processes of one run's group: on this machine (:func:`launch`, one per
GPU on CUDA) or under torchrun (:func:`joined`); the group itself is
``bench.train.distributed``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench.train.distributed import TIMEOUT, Group, close, dismiss, init

GRACE_SECONDS = 30.0  # after one process fails, how long the others get to finish


def launch(size: int, device: str, lead: Callable[[], None], follow: Callable[[], None]) -> int:
    """Run ``lead`` on rank 0 and ``follow`` on ranks 1.. of ``size`` new processes on this
    machine, one GPU each on CUDA; returns rank 0's exit code (else the first non-zero)."""
    gpus = torch.cuda.device_count() if torch.device(device).type == "cuda" else size
    if gpus < size:
        raise ValueError(f"{size} processes on CUDA need {size} GPUs; this machine has {gpus}")
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(r, size, store.port, device, lead, follow))
        for r in range(size)
    ]
    for p in procs:
        p.start()
    try:
        _wait(procs)
    except KeyboardInterrupt:  # they got it too: rank 0 records the interruption
        _wait(procs, time.monotonic())
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    codes = [c if c >= 0 else 128 - c for c in (p.exitcode or 0 for p in procs)]
    return codes[0] or next((c for c in codes if c), 0)


def _wait(procs: list[Any], failed_at: float | None = None) -> None:
    """Until all have exited, or one failed and the others had ``GRACE_SECONDS``."""
    while any(p.is_alive() for p in procs):
        if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
            return
        for p in procs:
            p.join(0.1)


def _worker(
    rank: int,
    size: int,
    port: int,
    device: str,
    lead: Callable[[], None],
    follow: Callable[[], None],
) -> None:
    code = 1
    try:
        store = dist.TCPStore("127.0.0.1", port, is_master=False, timeout=TIMEOUT)
        init(rank, size, device, store)
        try:
            (lead if rank == 0 else follow)()
            code = 0
        finally:
            dismiss()
            close()
    except SystemExit as e:  # rank 0's error boundary and a follower's Ctrl-C say their code
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
        traceback.print_exc()
    _exit(code)


def _exit(code: int) -> None:
    """End a worker process once its group is destroyed, without the interpreter's teardown.

    The objects that hold the process group (the DDP wrapper and its reducer sit in
    reference cycles) are collected here, while the interpreter is alive. Left to the
    teardown, gloo's threads and pending work were destroyed after the interpreter had
    gone: now and then ``terminate called without an active exception`` and SIGABRT,
    which the launcher reported as exit code 134 for a run that had finished.
    """
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


@contextmanager
def joined(device: str) -> Iterator[Group]:
    """Under torchrun (RANK, WORLD_SIZE, MASTER_ADDR set): this process's group."""
    group = init(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), device)
    try:
        yield group
    finally:
        dismiss()
        close()
