"""Several `bench` processes on one database (SQLite and PostgreSQL): what an outside probe
broke before claims. Two identical runs or evaluations at once: one does the work, the
other waits for it, nobody crashes, no row is duplicated. A worker killed with SIGKILL:
its claim expires and the next worker resumes the run after its last epoch (this replaces
the SQLite-only kill-and-resume test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import requires_mnist
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.jobs import train_job
from bench.spec.run import resolve
from bench.store import db as bdb

MAIN = "from bench.cli import main; main()"
RUN = [
    "run",
    "--defense",
    "standard",
    "--model",
    "tiny-cnn",
    "--dataset",
    "mnist",
    "--train-subset",
    "256",
    "--test-subset",
    "32",
    "--batch-size",
    "64",
    "--train-steps",
    "3",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def bench(db: str, tmp: Path, *args: str, lease: float = 60) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCH_DB": db, "BENCH_LEASE_SECONDS": str(lease), "OMP_NUM_THREADS": "1"}
    runs = ["--runs-dir", str(tmp / "runs")] if args[0] == "run" else []
    cmd = [sys.executable, "-c", MAIN, *args, *runs]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def finish(*procs: subprocess.Popen[str]) -> list[str]:
    """Each process's stdout + stderr, after checking that it succeeded."""
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "database is locked" not in out + err
        outs.append(out + err)
    return outs


def counts(db: str) -> tuple[int, int, int]:
    """Runs, epoch rows, evaluation rows."""
    with Session(bdb.connect(db)) as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(t))
            for t in (bdb.Run, bdb.EpochMetric, bdb.Evaluation)
        )


def evaluations_needed(db: str, attacks: int) -> int:
    """One row per attack and distinct weights (best and last may be the same weights)."""
    with Session(bdb.connect(db)) as s:
        return attacks * len(set(s.scalars(select(bdb.Checkpoint.sha256))))


@requires_mnist
def test_two_identical_runs_at_once_train_once(db_url: str, tmp_path: Path) -> None:
    bdb.connect(db_url).dispose()  # the schema exists; the race is on the rows
    args = [*RUN, "--epochs", "2", "--attacks", "clean,fgsm"]
    outs = finish(bench(db_url, tmp_path, *args), bench(db_url, tmp_path, *args))
    trained = [o for o in outs if "epoch 2/2:" in o]
    assert len(trained) == 1  # the other waited for it, then found it done
    assert counts(db_url) == (1, 2, evaluations_needed(db_url, 2))
    with Session(bdb.connect(db_url)) as s:
        run = s.scalars(select(bdb.Run)).one()
        assert run.status == "done" and "resumed" not in run.provenance


@requires_mnist
def test_two_identical_evaluations_at_once_store_each_once(db_url: str, tmp_path: Path) -> None:
    spec = resolve(
        "standard",
        "tiny-cnn",
        "mnist",
        None,
        train_subset=256,
        test_subset=32,
        overrides={"epochs": 1, "batch_size": 64, "steps": 3},
    )
    run, _ = train_job(bdb.connect(db_url), spec, runs_dir=tmp_path / "runs", progress=False)
    name = run.name
    args = ["eval", name, "--attacks", "clean,fgsm,pgd20", "--device", "cpu", "--no-progress"]
    outs = finish(bench(db_url, tmp_path, *args), bench(db_url, tmp_path, *args))
    assert counts(db_url)[2] == evaluations_needed(db_url, 3)
    lines = [sorted(line for line in o.splitlines() if "%" in line) for o in outs]
    assert lines[0] and [ln.split("(")[1].split("%")[0] for ln in lines[0]] == [
        ln.split("(")[1].split("%")[0] for ln in lines[1]
    ]  # both report the same stored numbers


def epochs_recorded(db: str) -> list[int]:
    if not bdb.db_exists(db):
        return []
    with Session(bdb.connect(db)) as s:
        return sorted(s.scalars(select(bdb.EpochMetric.epoch)))


@requires_mnist
def test_a_killed_workers_run_is_resumed_by_the_next(db_url: str, tmp_path: Path) -> None:
    args = [*RUN, "--epochs", "4", "--train-subset", "1000", "--no-eval"]
    first = bench(db_url, tmp_path, *args, lease=600)  # its claim would block for 10 min
    deadline = time.monotonic() + 300
    while (
        not bdb.db_exists(db_url) or not epochs_recorded(db_url)
    ) and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[1]
        time.sleep(0.1)
    assert first.poll() is None, "the run finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = epochs_recorded(db_url)
    assert 1 <= len(done_before) < 4
    # The dead worker was a process on this host: its live claim is taken over at once
    # (not after the lease), and the run resumes.
    t0 = time.monotonic()
    (out,) = finish(bench(db_url, tmp_path, *args, lease=600))
    assert "was a process on this host that has exited" in out, out
    assert "is being trained by" not in out and time.monotonic() - t0 < 300
    assert "resuming" in out and f"after epoch {len(done_before)}/4" in out
    assert epochs_recorded(db_url) == [1, 2, 3, 4]
    with Session(bdb.connect(db_url)) as s:
        run = s.scalars(select(bdb.Run)).one()
        assert run.status == "done" and run.epochs_done == 4
        assert {c.tag for c in run.checkpoints} == {"best", "last"}
        assert len(run.provenance["resumed"]) == 1
        claim = s.get_one(bdb.Claim, f"run:{run.key}")
        assert claim.attempts == 2 and claim.owner is None
