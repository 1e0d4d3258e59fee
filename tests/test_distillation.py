"""Defensive distillation (defenses/distillation.py): the two losses by hand, the teacher
as an auxiliary run trained first and recorded, and the deployed student's saturated
softmax that PGD overrates and CW-inf sees through."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.core.constants import TEACHER_FILE
from bench.spec.auxiliary import teacher_spec
from bench.spec.run import resolve
from bench.store import db as bdb
from bench.store.checkpoints import sha256
from bench.train.loop import train
from defenses import DEFENSES, StepContext
from defenses.distillation import soft_label_loss

runner = CliRunner()
CTX = StepContext(epoch=0, epochs=1)


def test_losses_by_hand() -> None:
    z_s, z_t = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[30.0, 10.0, 0.0]])
    T = 10.0
    p_t = [math.exp(3), math.exp(1), 1.0]
    p_t = [v / sum(p_t) for v in p_t]
    log_q = [v - math.log(math.exp(0.2) + 1 + math.exp(-0.1)) for v in (0.2, 0.0, -0.1)]
    want = -sum(p * q for p, q in zip(p_t, log_q, strict=True))
    assert soft_label_loss(z_s, z_t, T).item() == pytest.approx(want, rel=1e-6)

    y = torch.tensor([0])
    teacher = DEFENSES.get("distill-teacher")(temperature=T)
    ce = -(0.2 - math.log(math.exp(0.2) + 1 + math.exp(-0.1)))
    assert teacher.loss(lambda x: z_s, None, y, None, CTX).item() == pytest.approx(T * ce, 1e-6)
    plain = DEFENSES.get("distill-teacher")(temperature=T, scale_by_t=False)
    assert plain.loss(lambda x: z_s, None, y, None, CTX).item() == pytest.approx(ce, 1e-6)

    student = DEFENSES.get("distillation")(temperature=T)
    student.attach_teacher(torch.nn.Identity())
    got = student.loss(lambda x: z_s, z_t, y, None, CTX).item()
    assert got == pytest.approx(T * want, rel=1e-6)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DEFENSES.get("distillation")(temperature=0)


def test_the_teacher_is_the_students_twin_at_its_temperature() -> None:
    over = {"epochs": 3, "lr": 0.01}
    temp = {"temperature": 10}
    spec = resolve(
        "distillation",
        "smallcnn",
        "mnist",
        "demo-mnist",
        seed=2,
        train_subset=900,
        overrides=over,
        defense_overrides=temp,
        precision="bf16",
    )
    t = teacher_spec(spec)
    assert t is not None and t.defense == "distill-teacher"
    assert t.params() == {"temperature": 10, "scale_by_t": True}
    same = (
        "model",
        "dataset",
        "preset",
        "seed",
        "train_subset",
        "epochs",
        "lr",
        "eps",
        "precision",
    )
    assert all(getattr(t, k) == getattr(spec, k) for k in same)
    assert teacher_spec(resolve("mart", "smallcnn", "mnist")) is None


@requires_mnist
def test_missing_teacher_weights_are_a_clear_error(tmp_path: Path) -> None:
    spec = resolve("distillation", "tiny-cnn", "mnist", train_subset=64, overrides={"epochs": 1})
    with pytest.raises(FileNotFoundError, match="no teacher weights"):
        train(spec, tmp_path, progress=False)


@requires_mnist
def test_bench_run_trains_the_teacher_first_and_records_it(tmp_path: Path) -> None:
    db = str(tmp_path / "d.sqlite")
    args = "run --defense distillation --model tiny-cnn --train-subset 256 --test-subset 32"
    args += " --epochs 1 --param temperature=10 --no-eval --quiet"
    args = [*args.split(), "--db", db, "--runs-dir", str(tmp_path / "runs")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    with Session(bdb.connect(db)) as s:
        runs = {r.defense: r for r in s.scalars(select(bdb.Run)).all()}
        assert set(runs) == {"distillation", "distill-teacher"}
        assert all(r.status == "done" for r in runs.values())
        record = runs["distillation"].provenance["teacher"]
        last = next(c for c in runs["distill-teacher"].checkpoints if c.tag == "last")
        want = {"run": runs["distill-teacher"].name, "checkpoint": "last", "epoch": 1}
        assert record == {**want, "sha256": last.sha256}
        copy = Path(runs["distillation"].run_dir) / TEACHER_FILE
    assert sha256(copy) == last.sha256
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already trained" in again.output, again.output
