"""The CLI end to end on a small real MNIST subset, with a temporary database."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import requires_mnist
from typer.testing import CliRunner

from bench.cli import app
from bench.store import db as bdb

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@requires_mnist
def test_run_eval_table_end_to_end(tmp_path: Path) -> None:
    db, runs = str(tmp_path / "r.sqlite"), str(tmp_path / "runs")
    common = ["--db", db, "--device", "cpu", "--no-progress"]
    for defense in ("standard", "mart"):
        res = invoke(
            "run",
            "--defense",
            defense,
            "--model",
            "smallcnn",
            "--dataset",
            "mnist",
            "--train-subset",
            "512",
            "--test-subset",
            "100",
            "--epochs",
            "1",
            "--train-steps",
            "3",
            "--attacks",
            "clean,fgsm,pgd20,cw20",
            "--runs-dir",
            runs,
            *common,
        )
        assert res.exit_code == 0, res.output
        assert "pgd20" in res.output
    # Running it again does no work.
    res = invoke(
        "run",
        "--defense",
        "mart",
        "--model",
        "smallcnn",
        "--train-subset",
        "512",
        "--test-subset",
        "100",
        "--epochs",
        "1",
        "--train-steps",
        "3",
        "--runs-dir",
        runs,
        *common,
    )
    assert res.exit_code == 0 and "already trained" in res.output

    res = invoke("ls", "runs", "--db", db)
    assert res.exit_code == 0 and res.output.count("done") == 2

    res = invoke("table", "--paper", "--db", db)
    assert res.exit_code == 0, res.output
    out = res.output
    for needle in ("Standard", "MART", "Natural", "FGSM", "PGD-20", "CW-inf", "(96.48, "):
        assert needle in out
    assert "17,000" in out or "offline" in out.lower()  # the data is labelled
    assert "512 training images" in out and "100 test points" in out

    res = invoke("table", "--format", "csv", "--db", db)
    assert res.exit_code == 0 and res.output.startswith("run,")
    assert res.output.count("\n") == 1 + 2 * 2 * 4  # 2 runs x best/last x 4 attacks

    rows = invoke("ls", "runs", "--db", db).output.splitlines()[3:]  # title, header, rule
    name = rows[0].split("|")[1].strip()
    res = invoke("eval", name, "--attacks", "pgd10", "--checkpoint", "last", *common)
    assert res.exit_code == 0 and "pgd10" in res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--defense", "martt", "--model", "smallcnn"], "Did you mean 'mart'"),
        (["run", "--defense", "mart", "--model", "resnet19"], "Valid choices"),
        (["run", "--defense", "mart", "--model", "smallcnn", "--dataset", "svhn"], "dataset"),
        (["eval", "no-such-run"], "no run named"),
        (["table", "--format", "xml"], "valid: markdown"),
        (["ls", "widgets"], "unknown listing"),
        (["run", "--defense", "mart", "--model", "smallcnn", "--attacks", "pgd7"], "attack preset"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: list[str], needle: str, tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    bdb.connect(db).dispose()  # an empty database: read-only commands refuse a missing one
    res = runner.invoke(app, [*args, "--db", str(db)] if args[0] != "ls" else args)
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output
