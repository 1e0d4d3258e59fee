"""The stuck-at-chance and collapse guard (bench/eval/health.py), by hand and end to end."""

from __future__ import annotations

from pathlib import Path

from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.eval.checks import FLAG, NOT_EVALUATED, OK
from bench.eval.health import EpochAcc, assess, epoch_note
from bench.store import db as bdb

runner = CliRunner()


def history(*pairs: tuple[float, float]) -> list[EpochAcc]:
    return [EpochAcc(i + 1, clean, robust) for i, (clean, robust) in enumerate(pairs)]


def test_a_run_at_chance_is_judged_after_three_epochs_then_flagged() -> None:
    two = assess(history((0.11, 0.10), (0.19, 0.10)), classes=10, n=1000)
    assert not two.stuck and two.left_chance is None
    assert [c.status for c in two.checks()] == [NOT_EVALUATED, OK]
    three = assess(history((0.11, 0.10), (0.19, 0.10), (0.113, 0.10)), classes=10, n=1000)
    assert three.stuck
    chance, collapse = three.checks()
    assert (chance.check, chance.status) == ("left-chance", FLAG)
    assert "still at chance after 3 epoch(s) (clean 11.3%, chance <= 20%)" in chance.detail
    assert collapse.status == OK
    assert epoch_note(three, 3) == "still at chance after 3 epochs"
    assert epoch_note(three, 2) == ""


def test_leaving_chance_is_reported_at_its_epoch() -> None:
    h = assess(history((0.11, 0.1), (0.12, 0.1), (0.15, 0.1), (0.36, 0.2), (0.55, 0.3)), 10)
    assert h.left_chance == 4 and not h.stuck
    assert [epoch_note(h, e) for e in (3, 4, 5)] == [
        "still at chance after 3 epochs",
        "left chance",
        "",
    ]
    assert h.checks()[0].status == OK and h.summary() == "left chance at epoch 4"
    assert assess(history((0.9, 0.5)), 10).left_chance == 1
    assert epoch_note(assess(history((0.9, 0.5)), 10), 1) == ""  # the common case: silent


def test_a_collapse_is_half_the_best_and_ten_points_down() -> None:
    fast_at = history((0.8, 0.40), (0.85, 0.48), (0.9, 0.02), (0.9, 0.01))
    h = assess(fast_at, 10, n=500)
    assert h.collapse is not None
    assert (h.collapse.epoch, h.collapse.best_epoch, h.collapse.best) == (3, 2, 0.48)
    check = h.checks()[1]
    assert (check.check, check.status, check.value) == ("no-robust-collapse", FLAG, 3.0)
    assert check.detail == "PGD-20 collapsed at epoch 3: 2.0% from 48.0% at epoch 2"
    assert epoch_note(h, 3) == "PGD-20 collapsed from 48.0% (epoch 2)"
    # Robust overfitting (a slow decline) and a small model's noise are not collapses.
    slow = history((0.9, 0.50), (0.9, 0.47), (0.9, 0.44), (0.9, 0.41))
    assert assess(slow, 10).collapse is None
    tiny = history((0.3, 0.12), (0.3, 0.05))  # below half, but 7 points: not a collapse
    assert assess(tiny, 10).collapse is None


@requires_mnist
def test_a_run_that_cannot_learn_is_flagged_on_the_line_in_show_and_in_the_table(
    tmp_path: Path,
) -> None:
    """lr 0: the model stays at chance; the epoch line, `bench show` and the audit say so."""
    db, runs = str(tmp_path / "r.sqlite"), str(tmp_path / "runs")
    res = runner.invoke(
        app,
        [
            *("run", "--defense", "natural", "--model", "tiny-cnn", "--dataset", "mnist"),
            *("--train-subset", "64", "--test-subset", "40", "--epochs", "3", "--lr", "0"),
            *("--attacks", "clean,fgsm", "--runs-dir", runs, "--db", db, "--device", "cpu"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "epoch 3/3" in res.output and "still at chance after 3 epochs" in res.output
    engine = bdb.connect(db)
    with Session(engine) as s:
        name = s.scalars(select(bdb.Run.name)).one()
        flags = s.scalars(select(bdb.AuditFlag).where(bdb.AuditFlag.check == "left-chance"))
        assert {f.status for f in flags} == {FLAG}
    shown = runner.invoke(app, ["show", name, "--db", db]).output
    assert "training health: still at chance after 3 epoch(s)" in shown
    table = runner.invoke(app, ["table", "--paper", "--db", db]).output
    assert "left-chance" in table
