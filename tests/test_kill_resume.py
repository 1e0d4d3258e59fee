"""A `bench run` killed mid-training (SIGKILL, no clean-up) finishes when started again,
without redoing the epochs it had completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.store import db as bdb

ARGS = [
    "run", "--defense", "standard", "--model", "tiny-cnn", "--dataset", "mnist",
    "--train-subset", "1500", "--test-subset", "50", "--epochs", "4", "--batch-size", "50",
    "--train-steps", "5", "--no-eval", "--device", "cpu", "--no-progress",
]  # fmt: skip


def bench(tmp: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCH_DB": str(tmp / "db.sqlite"), "OMP_NUM_THREADS": "1"}
    # The `bench` console script's entry point (bench.cli is a package with no __main__).
    main = "from bench.cli import main; main()"
    cmd = [sys.executable, "-c", main, *ARGS, "--runs-dir", str(tmp / "runs"), *extra]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def epochs_recorded(tmp: Path) -> list[int]:
    path = tmp / "db.sqlite"
    if not path.exists():
        return []
    with Session(bdb.connect(path)) as s:
        return sorted(s.scalars(select(bdb.EpochMetric.epoch)))


@requires_mnist
def test_killed_run_resumes_after_last_completed_epoch(tmp_path: Path) -> None:
    proc = bench(tmp_path)
    deadline = time.monotonic() + 300
    while not epochs_recorded(tmp_path) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = epochs_recorded(tmp_path)
    assert 1 <= len(done_before) < 4

    again = bench(tmp_path)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "resuming" in err and f"after epoch {len(done_before)}/4" in err
    assert epochs_recorded(tmp_path) == [1, 2, 3, 4]
    with Session(bdb.connect(tmp_path / "db.sqlite")) as s:
        run = s.scalars(select(bdb.Run)).one()
        assert run.status == "done" and run.epochs_done == 4
        assert {c.tag for c in run.checkpoints} == {"best", "last"}
