"""One run across processes (bench/train/distributed.py): two gloo processes on the CPU.

SmallCNN MART on 256 MNIST images, batch 64 (32 per rank), one thread per process:
the weights after each epoch equal a one-process run within 1e-5. When rank 0 loses its
claim in epoch 2 the whole group stops, and trained again it resumes to the weights of a
straight 2-process run, bit for bit. Through the command line (`bench run --nproc 2`),
rank 0 alone writes: one run row, one row per epoch, the checkpoints; run again, it
finds the run done and the followers leave with it. Without processes: the shards of
every batch make up the global batch (also a last batch that does not split evenly), and
a shard's random draws are the global batch's, sliced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import ddp_helpers
import pytest
import torch
from conftest import REPO, requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench import data as bdata
from bench.spec.run import resolve
from bench.store import db as bdb
from bench.store.checkpoints import load_state
from bench.train import distributed, processes
from bench.train.loop import Interrupted, follow, train
from bench.train.runtime import Runtime

pytestmark = requires_mnist
TOL = 1e-5
ONE = Runtime(threads=1)
# `bench run` options that resolve to SPEC below.
CLI = [
    "--defense",
    "mart",
    "--model",
    "smallcnn",
    "--train-subset",
    "256",
    "--test-subset",
    "32",
    "--epochs",
    "2",
    "--batch-size",
    "64",
    "--train-steps",
    "10",
    "--threads",
    "1",
]
SPEC = resolve(
    "mart",
    "smallcnn",
    "mnist",
    train_subset=256,
    test_subset=32,
    overrides={"epochs": 2, "batch_size": 64, "steps": 10},
)


def _weights(run_dir: Path, file: str = "state.pt") -> dict[str, torch.Tensor]:
    return load_state(run_dir / file)["model"]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    """Weights after epochs 1 and 2: one process, stopped after epoch 1 and resumed; and
    two, whose rank 0 loses its claim early in epoch 2 and then trains the run again."""
    base = tmp_path_factory.mktemp("ddp")
    with pytest.raises(Interrupted):
        train(SPEC, base / "one", progress=False, stop_after=1, runtime=ONE)
    out = {"one-1": _weights(base / "one")}
    train(SPEC, base / "one", progress=False, runtime=ONE)
    out["one-2"] = _weights(base / "one")
    # 4 batches an epoch, a check before each and one before the epoch's files: call 7 is
    # epoch 2's second batch.
    lead = partial(ddp_helpers.lead_losing_claim, SPEC, base / "two", 7)
    assert processes.launch(2, "cpu", lead, follow) == 0
    assert load_state(base / "two" / "interrupted.pt")["epoch"] == 1
    out["two-1"] = _weights(base / "two", "interrupted.pt")
    out["two-2"] = _weights(base / "two")
    return out


def test_two_processes_give_the_one_process_weights(runs: dict) -> None:
    for epoch in (1, 2):
        diff = _max_diff(runs[f"one-{epoch}"], runs[f"two-{epoch}"])
        print(f"epoch {epoch}: max |w(2 processes) - w(1 process)| = {diff:.3g}")
        assert diff < TOL
    assert _max_diff(runs["one-2"], runs["one-1"]) > 1e-3  # epoch 2 did train


def test_cli_nproc_two_rank_zero_alone_writes_and_replays_the_resumed_run(
    runs: dict, tmp_path: Path
) -> None:
    db, runs_dir = tmp_path / "b.sqlite", tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        *CLI,
        "--nproc",
        "2",
        "--no-eval",
        "--quiet",
        "--db",
        str(db),
        "--runs-dir",
        str(runs_dir),
    ]
    env = {**os.environ, "BENCH_HOME": str(tmp_path / "home")}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    engine = bdb.connect(db)
    with Session(engine) as s:
        (run,) = s.scalars(select(bdb.Run)).all()
        assert run.name == SPEC.name and run.status == "done"
        assert sorted(e.epoch for e in run.epochs) == [1, 2]
        assert sorted(c.tag for c in run.checkpoints) == ["best", "last"]
        assert run.provenance["runtime"]["nproc"] == 2
    assert sorted(p.name for p in (runs_dir / SPEC.name).iterdir()) == [
        "best.safetensors",
        "last.safetensors",
        "state.pt",
    ]
    # The straight run equals the one stopped in epoch 2 and resumed, bit for bit.
    assert _max_diff(_weights(runs_dir / SPEC.name), runs["two-2"]) == 0.0
    # Run again: rank 0 finds the run done, and the followers are dismissed.
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "already trained" in again.stderr, again.stderr


def test_shards_of_every_batch_make_the_global_batch_even_when_it_does_not_split() -> None:
    x = torch.randint(0, 256, (70, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(70)
    whole = list(bdata.Batches(x, y, 32, shuffle=True, seed=5, augment="crop-flip"))
    parts = [
        bdata.Batches(x, y, 32, shuffle=True, seed=5, augment="crop-flip", shard=(r, 3))
        for r in range(3)
    ]
    assert [s[-1] for s in parts[0].spans()] == [32, 32, 6]  # the last: shards of 2
    for b, batches in enumerate(zip(*parts, strict=True)):
        assert torch.equal(torch.cat([xb for xb, _, _ in batches]), whole[b][0])
        assert torch.equal(torch.cat([idx for _, _, idx in batches]), whole[b][2])
        sizes = [len(yb) for _, yb, _ in batches]
        assert max(sizes) - min(sizes) <= 1


def test_draws_in_a_shard_are_the_global_batch_draws_sliced() -> None:
    x = torch.rand(10, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    drop = torch.nn.Dropout(0.5)

    def draw(t: torch.Tensor) -> list[torch.Tensor]:
        torch.manual_seed(3)
        return [torch.randn_like(t), torch.empty_like(t).uniform_(-1, 1), drop(t), torch.rand(2)]

    whole = draw(x)
    with distributed.draws((4, 7, 10)):
        part = draw(x[4:7])
    for w, p in zip(whole[:3], part[:3], strict=True):
        assert torch.equal(w[4:7], p)
    assert torch.equal(whole[3], part[3])  # not per example: drawn as in one process
