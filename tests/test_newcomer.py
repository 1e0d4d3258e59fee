"""What a newcomer meets first: the order of `bench --help`, run names typed in part, and
the cost of a job said before the work (issue 20)."""

from __future__ import annotations

from pathlib import Path

from conftest import requires_mnist
from typer.testing import CliRunner

from bench.cli import app
from bench.report.text import time_left
from bench.spec.run import resolve
from bench.train.estimate import estimate_line

runner = CliRunner()


def test_help_lists_commands_in_the_order_a_newcomer_uses_them() -> None:
    out = runner.invoke(app, ["--help"]).output
    commands = [ln.split()[0] for ln in out.split("Commands:")[1].splitlines() if ln.strip()]
    assert commands[:4] == ["demo", "run", "eval", "table"]
    assert set(commands) >= {"show", "ls", "experiment", "report", "zoo", "rm", "regress"}


def test_the_estimate_names_the_whole_job_and_a_gpu_sized_one() -> None:
    spec = resolve("mart", "resnet18", "cifar10")
    small = estimate_line(spec, 3, per_batch=0.5, batches=10, device="cpu")
    assert small.startswith("estimate: 15 s of training for 3 epoch(s) on this machine (5 s")
    assert "sized for a GPU" not in small
    big = estimate_line(spec, 100, per_batch=110.0, batches=391, device="cpu")
    assert "49.8 days" in big and "sized for a GPU" in big and "--device cuda" in big
    assert "sized for a GPU" not in estimate_line(spec, 100, 110.0, 391, device="cuda")


def test_the_demo_says_how_long_is_left() -> None:
    assert time_left(0.0, 0, 9) == ""
    assert "min left" in time_left(0.0, 1, 9)
    assert time_left(0.0, 9, 9) == ""


@requires_mnist
def test_the_demo_runs_two_at_a_time_in_bf16_and_one_by_one(tmp_path: Path) -> None:
    """Two worker processes (the default on 2+ cores) and bf16 where it is fast; then the
    same demo one run at a time finds every run done and says which it is on."""
    env = {"BENCH_HOME": str(tmp_path)}
    tiny = ["--train-subset", "200", "--test-subset", "40", "--epochs", "1", "--seeds", "0"]
    res = runner.invoke(app, ["demo", *tiny, "--workers", "2", "--precision", "bf16"], env=env)
    assert res.exit_code == 0, res.output
    assert "demo: 3 runs (bf16 training), 2 at a time on cpu" in res.output
    assert "[local] 3/3 job(s) done" in res.output
    for defense in ("Standard", "TRADES", "MART"):
        assert f"| {defense}" in res.output
    assert "-e1-bf16-s0-" in res.output  # the precision is part of each run's spec and name
    again = runner.invoke(app, ["demo", *tiny, "--workers", "1", "--precision", "bf16"], env=env)
    assert again.exit_code == 0, again.output
    assert "== run 3 of 3: mnist-smallcnn-mart-demo-mnist-n200-e1-bf16-s0-" in again.output


@requires_mnist
def test_a_run_prints_its_estimate_and_answers_to_a_unique_prefix(tmp_path: Path) -> None:
    db = str(tmp_path / "p.sqlite")
    common = ["--model", "tiny-cnn", "--dataset", "mnist", "--train-subset", "256"]
    common += ["--batch-size", "16", "--test-subset", "20", "--epochs", "1", "--no-eval"]
    common += ["--db", db, "--runs-dir", str(tmp_path / "runs")]
    res = runner.invoke(app, ["run", "--defense", "natural", *common])
    assert res.exit_code == 0 and "estimate: " in res.output, res.output
    assert runner.invoke(app, ["run", "--defense", "standard", *common]).exit_code == 0
    shown = runner.invoke(app, ["show", "mnist-tiny-cnn-natural", "--db", db])
    assert shown.exit_code == 0 and "# mnist-tiny-cnn-natural-paper-4.2-mnist" in shown.output
    both = runner.invoke(app, ["show", "mnist-tiny-cnn-", "--db", db])
    assert both.exit_code == 2 and "is the start of several runs" in both.output
    assert len(both.output.strip().splitlines()) == 1
