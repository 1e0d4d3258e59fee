"""Executors place a grid's jobs on an engine; the claims decide what is done.

One small grid (tiny-cnn on MNIST: two defenses x two seeds, one epoch, clean and FGSM on
both checkpoints) is run once in this process, one job after another: the reference.
Then each engine runs the same grid on a fresh database, and every run must be done, each
epoch and evaluation stored once, and every number equal to the reference's:

- ``local``: two worker processes, one of them killed with SIGKILL mid-way (its claim's
  lease expires and the other worker finishes its job);
- ``slurm`` through submitit's LocalExecutor (``--submitit-cluster local``): the same
  pickled function and job folders as on a cluster, but processes on this machine; no
  sbatch, squeue or sacct is run (there is no SLURM here), so the sbatch script, the
  partition/GPU/time requests and sacct's states are not exercised;
- ``ray`` on a local Ray instance this test starts with 2 CPUs, at the same time as a
  ``local`` worker on the same grid (two engines, one database: no duplicates);
- the command line: ``bench run --seeds 0,1 --executor local``, ``--status``, bad options.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import requires_mnist
from soaklib import _numbers
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench import executors
from bench.cli import app
from bench.executors import base
from bench.executors.drive import wait_for
from bench.jobs.experiments import job_status, run_experiment
from bench.spec import experiments as bexp
from bench.store import claims
from bench.store import db as bdb
from bench.train.runtime import Runtime

GRID = bexp.Overrides(
    model="tiny-cnn",
    dataset="mnist",
    only=("standard", "trades"),
    seeds=(0, 1),
    epochs=1,
    train_subset=128,
    test_subset=64,
    train_steps=3,
)
ATTACKS = ("clean", "fgsm")
ONE_THREAD = Runtime(threads=1)


def grid_jobs() -> list[bexp.Job]:
    jobs = bexp.expand("table2-mnist", GRID, None)
    return [dataclasses.replace(j, attacks=ATTACKS) for j in jobs]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The grid run one job after another in this process (no executor)."""
    folder = tmp_path_factory.mktemp("reference")
    db = str(folder / "ref.sqlite")
    run_experiment(
        bdb.connect(db),
        grid_jobs(),
        runs_dir=folder / "runs",
        device="cpu",
        progress=False,
        runtime=ONE_THREAD,
    )
    return db


def check_grid(db: str, reference: str, jobs: list[bexp.Job]) -> None:
    """Every job done; each epoch and evaluation once; the reference's numbers."""
    engine = bdb.connect(db)
    assert all(job_status(engine, j).complete for j in jobs)
    with Session(engine) as s:
        rows = s.execute(select(bdb.EpochMetric.run_id, bdb.EpochMetric.epoch)).all()
        epochs = collections.Counter(tuple(r) for r in rows)
        keys = collections.Counter(s.scalars(select(bdb.Evaluation.key)))
    assert len(epochs) == len(jobs) and max(epochs.values()) == 1
    assert keys and max(keys.values()) == 1
    ours, ref = _numbers(db), _numbers(reference)
    names = {j.spec.name for j in jobs}
    assert {k: v for k, v in ref.items() if k in names} == {k: ours[k] for k in names}
    engine.dispose()


def context(db: str, tmp: Path) -> executors.Context:
    engine = bdb.connect(db)
    ctx = executors.context(
        engine, runs_dir=tmp / "runs", data_root=None, device="cpu", runtime=ONE_THREAD
    )
    engine.dispose()
    return ctx


def quiet(_text: str) -> None:
    pass


def _claimed_pid(engine, pids: set[int]) -> int | None:
    """A worker pid that holds a run's claim now."""
    with Session(engine) as s:
        owners = s.scalars(select(bdb.Claim.owner).where(bdb.Claim.owner.is_not(None))).all()
    held = [claims.owner_pid(o) for o in owners]
    return next((p for p in held if p in pids), None)


@requires_mnist
def test_local_workers_survive_a_kill(reference: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_LEASE_SECONDS", "3")
    db, jobs = str(tmp_path / "local.sqlite"), grid_jobs()
    opts = executors.Options(workers=2, log_dir=tmp_path / "ex", wait=False, poll=0.3)
    ex = executors.check("local", opts)
    engine = bdb.connect(db)
    executors.place(ex, engine, context(db, tmp_path), jobs, opts, quiet)
    pids = {p.pid for p in ex.procs}  # type: ignore[attr-defined]
    deadline, victim = time.monotonic() + 120, None
    while victim is None and time.monotonic() < deadline:
        victim = _claimed_pid(engine, pids)
        time.sleep(0.05)
    assert victim is not None, "no worker claimed a job"
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(executors.JobsFailed, match=f"worker {victim} exited with code -9"):
        wait_for(ex, engine, jobs, 0.3, quiet)  # the survivor finished everything
    check_grid(db, reference, jobs)
    lines = executors.status_lines(engine, jobs)
    assert all("| local " in line and "EXITED" in line for line in lines)


@requires_mnist
def test_submitit_local_executor(reference: str, tmp_path: Path) -> None:
    db, jobs = str(tmp_path / "submitit.sqlite"), grid_jobs()[:2]
    opts = executors.Options(cluster="local", log_dir=tmp_path / "ex", poll=0.5, time_min=10)
    said: list[str] = []
    engine = bdb.connect(db)
    executors.place(
        executors.check("slurm", opts), engine, context(db, tmp_path), jobs, opts, said.append
    )
    assert said[0] == "placed 2 job(s) on slurm" and said[-1] == "2/2 job(s) done"
    check_grid(db, reference, jobs)
    lines = executors.status_lines(engine, jobs)  # submitit's word: its result file is there
    assert all("| slurm " in line and line.endswith(": FINISHED") for line in lines), lines
    with Session(engine) as s:
        rows = s.scalars(select(bdb.Placement)).all()
    assert [r.state for r in rows] == ["FINISHED"] * 2
    assert all((tmp_path / "ex" / "submitit" / r.external_id).is_dir() for r in rows)


@requires_mnist
def test_ray_and_a_local_worker_on_one_grid(reference: str, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[cluster]')")
    db, jobs = str(tmp_path / "ray.sqlite"), grid_jobs()
    engine, ctx = bdb.connect(db), context(db, tmp_path)
    local_opts = executors.Options(workers=1, log_dir=tmp_path / "ex", wait=False)
    local = executors.check("local", local_opts)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executors.place(local, engine, ctx, jobs, local_opts, quiet)
        opts = executors.Options(poll=0.5)
        executors.place(executors.check("ray", opts), engine, ctx, jobs, opts, quiet)
    finally:
        ray.shutdown()
    for proc in local.procs:  # type: ignore[attr-defined]
        assert proc.wait(timeout=300) == 0
    check_grid(db, reference, jobs)
    with Session(engine) as s:
        engines = {r.executor for r in s.scalars(select(bdb.Placement))}
    assert engines == {"local", "ray"}


CLI_RUN = [
    "run",
    "--defense",
    "standard",
    "--model",
    "tiny-cnn",
    "--dataset",
    "mnist",
    "--seeds",
    "0,1",
    "--epochs",
    "1",
    "--train-subset",
    "128",
    "--test-subset",
    "64",
    "--train-steps",
    "3",
    "--attacks",
    "clean,fgsm",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--no-progress",
]


@requires_mnist
def test_bench_run_grid_on_local_workers(tmp_path: Path) -> None:
    where = ["--db", str(tmp_path / "cli.sqlite"), "--runs-dir", str(tmp_path / "runs")]
    place = ["--executor", "local", "--workers", "2", "--executor-dir", str(tmp_path / "ex")]
    res = CliRunner().invoke(app, [*CLI_RUN, *where, *place])
    assert res.exit_code == 0, res.output
    assert "[local] placed 2 job(s) on local" in res.output and "2/2 job(s) done" in res.output
    status = CliRunner().invoke(app, [*CLI_RUN, *where, "--status"])
    assert status.exit_code == 0, status.output
    lines = [ln for ln in status.output.splitlines() if ln.startswith("done")]
    assert len(lines) == 2 and all("evals 4/4" in ln and "| local " in ln for ln in lines)
    with Session(bdb.connect(tmp_path / "cli.sqlite")) as s:
        assert len(s.scalars(select(bdb.Evaluation)).all()) <= 8  # best and last may share


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--executor", "nosuch"], "unknown executor 'nosuch'"),
        (["--executor", "local", "--workers", "0"], "--workers"),
        (["--workers", "3"], "add --executor"),
        (["--executor", "ray", "--no-wait"], "Ray tasks end with the command"),
        (["--executor", "ray", "--ray-address", "no such"], "--ray-address"),
        (["--executor", "slurm", "--submitit-cluster", "pbs"], "--submitit-cluster"),
    ],
    ids=["unknown", "workers-0", "workers-alone", "ray-no-wait", "ray-address", "cluster"],
)
def test_bad_executor_options_are_one_line(extra: list[str], needle: str, tmp_path) -> None:
    db = tmp_path / "bad.sqlite"
    res = CliRunner().invoke(app, [*CLI_RUN, "--db", str(db), *extra])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) <= 2 or "Usage" in res.output
    assert not db.exists()  # checked before anything was opened


def test_executors_import_no_engine() -> None:
    """submitit and Ray are imported only when an executor places work."""
    code = (
        "import sys, bench.executors as e; e.EXECUTORS.get('slurm'); e.EXECUTORS.get('ray'); "
        "assert not {'ray', 'submitit'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


FAKE_SBATCH = """#!/bin/sh
cp "$1" "$(dirname "$0")/last.sbatch"
echo "Submitted batch job 4242"
"""
FAKE_SACCT = """#!/bin/sh
printf 'JobID|State|NodeList\\n4242_[0-1]|PENDING|None assigned\\n'
"""


def _fake_slurm(folder: Path) -> Path:
    """sbatch that keeps the script and answers a job id, sacct that says PENDING, srun."""
    folder.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("sacct", FAKE_SACCT), ("srun", "#!/bin/sh\n")):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def test_slurm_submission_against_a_fake_sbatch(tmp_path: Path, monkeypatch) -> None:
    """What reaches SLURM: the sbatch script's requests and the job array, and `--status`
    reading sacct. The fake scheduler runs nothing, so the jobs stay pending."""
    fake = _fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    where = ["--db", str(tmp_path / "slurm.sqlite")]
    slurm = [
        "--executor",
        "slurm",
        "--slurm-partition",
        "gpu",
        "--gpus-per-job",
        "1",
        "--cpus-per-job",
        "4",
        "--time",
        "30",
        "--no-wait",
    ]
    res = CliRunner().invoke(app, [*CLI_RUN, *where, *slurm])
    assert res.exit_code == 0, res.output
    assert "placed 2 job(s) on slurm" in res.output and "--no-wait" in res.output
    script = (fake / "last.sbatch").read_text()
    for line in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=4",
        "--time=30",
        "--array=0-1%",
    ):
        assert f"#SBATCH {line}" in script, script
    status = CliRunner().invoke(app, [*CLI_RUN, *where, "--status"])
    lines = [ln for ln in status.output.splitlines() if ln.startswith("missing")]
    assert len(lines) == 2 and all("| slurm 4242_" in ln for ln in lines), status.output
    assert all(ln.endswith(": PENDING") for ln in lines)


def test_slurm_without_sbatch_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    res = CliRunner().invoke(app, [*CLI_RUN, "--executor", "slurm", "--db", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no sbatch on PATH" in res.output, res.output


@pytest.mark.parametrize("name", ["slurm", "ray"])
def test_a_missing_engine_package_is_one_line(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(base, "find_spec", lambda _module: None)
    res = CliRunner().invoke(app, [*CLI_RUN, "--executor", name, "--db", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert "pip install -e '.[cluster]'" in res.output and "Traceback" not in res.output


@requires_mnist
def test_experiment_no_wait_then_status(tmp_path: Path) -> None:
    """`bench experiment --executor local --no-wait` returns at once; the workers go on,
    and `--status` follows them until every job is done."""
    exp = [
        "experiment",
        "table2-mnist",
        "--model",
        "tiny-cnn",
        "--dataset",
        "mnist",
        "--only",
        "standard",
        "--epochs",
        "1",
        "--train-subset",
        "128",
        "--test-subset",
        "64",
        "--train-steps",
        "3",
        "--db",
        str(tmp_path / "exp.sqlite"),
    ]
    place = [
        "--executor",
        "local",
        "--workers",
        "1",
        "--threads",
        "1",
        "--no-wait",
        "--device",
        "cpu",
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    res = CliRunner().invoke(app, [*exp, *place])
    assert res.exit_code == 0, res.output
    assert "placed 1 job(s) on local" in res.output and "not waiting" in res.output
    deadline, line = time.monotonic() + 300, ""
    while time.monotonic() < deadline and not line.endswith("EXITED"):  # the worker ended
        status = CliRunner().invoke(app, [*exp, "--status"])
        line = status.output.splitlines()[-1].strip()
        assert "| local " in line, status.output
        time.sleep(0.5)
    assert line.startswith("done") and "evals 8/8" in line and "EXITED" in line, line


@requires_mnist
def test_bench_eval_on_a_local_worker(reference: str, tmp_path: Path) -> None:
    """`bench eval RUN --executor local`: the run's evaluations as a job on a worker; the
    numbers equal the reference's (the same run, evaluated in this process)."""
    db, job = str(tmp_path / "eval.sqlite"), grid_jobs()[0]
    run_experiment(
        bdb.connect(db),
        [dataclasses.replace(job, attacks=())],
        runs_dir=tmp_path / "runs",
        device="cpu",
        progress=False,
        runtime=ONE_THREAD,
    )
    ev = ["eval", job.spec.name, "--attacks", ",".join(ATTACKS), "--db", db, "--device", "cpu"]
    bad = CliRunner().invoke(app, [*ev, "--executor", "local", "--test-subset", "10"])
    assert bad.exit_code == 2 and "drop --checkpoint" in bad.output, bad.output
    res = CliRunner().invoke(
        app, [*ev, "--executor", "local", "--workers", "1", "--executor-dir", str(tmp_path)]
    )
    assert res.exit_code == 0 and "placed 1 job(s) on local" in res.output, res.output
    status = CliRunner().invoke(app, [*ev, "--status"])
    assert "evals 4/4" in status.output and "| local " in status.output, status.output
    check_grid(db, reference, [job])
