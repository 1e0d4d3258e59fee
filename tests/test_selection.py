"""Honest checkpoint selection (--val-subset): held-out training images, never trained on,
choose a "best-val" checkpoint beside the papers' best-on-test and the last one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.spec.run import resolve
from bench.store import db as bdb
from bench.store.checkpoints import read_metadata
from bench.train import loop
from bench.train.selection import Selection, split_validation, write_checkpoints


def test_the_last_n_training_images_are_held_out_and_named() -> None:
    spec = resolve("mart", "smallcnn", "mnist", train_subset=100, val_subset=30)
    x, y = torch.arange(100).view(100, 1), torch.arange(100)
    (_, yt), (_, yv) = split_validation(spec, x, y)
    assert yt.tolist() == list(range(70)) and yv.tolist() == list(range(70, 100))
    assert "-n100-v30-" in spec.name
    plain = resolve("mart", "smallcnn", "mnist", train_subset=100)
    assert "val_subset" not in plain.to_dict()  # older runs keep their keys
    assert split_validation(plain, x, y)[1] is None
    with pytest.raises(ValueError, match="--val-subset 100"):
        resolve("mart", "smallcnn", "mnist", train_subset=100, val_subset=100)


def test_best_on_test_and_best_on_held_out_images_are_chosen_apart(tmp_path: Path) -> None:
    spec = resolve("natural", "tiny-cnn", "mnist", train_subset=64, val_subset=8)
    model, sel = torch.nn.Linear(2, 2), Selection()
    test_acc = [0.2, 0.5, 0.4, 0.5]  # best on test: epoch 2 (a tie later keeps epoch 2)
    val_acc = [0.3, 0.2, 0.6, 0.1]  # best on the held-out images: epoch 3
    written = {}
    for epoch, (t, v) in enumerate(zip(test_acc, val_acc, strict=True)):
        with torch.no_grad():
            model.bias.fill_(epoch)
        write_checkpoints(spec, sel, model, tmp_path, epoch, t, v)
        written = {p.stem: read_metadata(p)["epoch"] for p in tmp_path.glob("*.safetensors")}
    assert written == {"best": "2", "best-val": "3", "last": "4"}
    assert (sel.best_epoch, sel.val_epoch) == (2, 3)
    assert Selection.from_file(sel.to_file()) == sel
    assert Selection.from_file({"best_robust": 0.5, "best_epoch": 2}).val_epoch == 0  # old state


@requires_mnist
def test_held_out_images_are_not_trained_on() -> None:
    spec = resolve("natural", "tiny-cnn", "mnist", train_subset=50, val_subset=10)
    _, y, n_labelled = loop._training_data(spec, Path("unused"), None)
    assert len(y) == n_labelled == 40


@requires_mnist
def test_val_subset_end_to_end(tmp_path: Path) -> None:
    db, runs = str(tmp_path / "v.sqlite"), str(tmp_path / "runs")
    res = CliRunner().invoke(
        app,
        [
            *("run", "--defense", "natural", "--model", "tiny-cnn", "--dataset", "mnist"),
            *("--train-subset", "256", "--val-subset", "64", "--test-subset", "40"),
            *("--epochs", "3", "--lr", "0.05", "--attacks", "clean,fgsm", "--no-progress"),
            *("--db", db, "--runs-dir", runs),
        ],
    )
    assert res.exit_code == 0, res.output
    engine = bdb.connect(db)
    with Session(engine) as s:
        run = s.scalars(select(bdb.Run)).one()
        assert run.n_train == 192 and "-v64-" in run.name
        assert {c.tag for c in run.checkpoints} == {"best", "last", "best-val"}
        assert all(e.n_val == 64 and e.val_robust_acc is not None for e in run.epochs)
        best_val = max(run.epochs, key=lambda e: (e.val_robust_acc, -e.epoch))
        ckpt = next(c for c in run.checkpoints if c.tag == "best-val")
        assert ckpt.epoch == best_val.epoch
        evaluated = {(e.checkpoint, e.attack) for e in run.evaluations}
        name = run.name
    # Each checkpoint's evaluations exist (shared weights count for every tag they are).
    table = CliRunner().invoke(app, ["table", "--paper", "--db", db]).output
    assert " / val " in table and "'val' is the epoch chosen on those" in table
    assert "best-val = epoch" in table
    assert evaluated
    shown = CliRunner().invoke(app, ["eval", name, "--attacks", "clean", "--db", db]).output
    assert "best-val" in shown
