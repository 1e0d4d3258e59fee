"""docs/adding-a-defense.md and adding-an-attack.md stay true: one class, registered, is all
it takes for the CLI, the database and the tables to know it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import attacks
from attacks.base import Attack, AttackPreset, add_preset
from bench import jobs
from bench.cli import app
from bench.jobs.train import _start
from bench.report.frames import evaluations_frame
from bench.spec.run import resolve
from bench.store import db as bdb
from defenses.base import DEFENSES, PGDDefense, register


@pytest.fixture
def walkthrough() -> Iterator[None]:
    """The documented defense and attack, registered for this test only."""

    @register
    @dataclass
    class Halfway(PGDDefense):
        lam: float = 0.5
        name: ClassVar[str] = "walkthrough"
        display_name: ClassVar[str] = "Walkthrough"
        summary: ClassVar[str] = "lam * CE(x') + (1 - lam) * CE(x)"

        def loss(self, model, x, y, x_adv, ctx):
            return self.lam * F.cross_entropy(model(x_adv), y) + (1 - self.lam) * F.cross_entropy(
                model(x), y
            )

    @attacks.register
    @dataclass
    class Noise(Attack):
        name: ClassVar[str] = "walkthrough-noise"

        def perturb(self, model, x, y):
            return (x + self.eps * torch.randn_like(x).sign()).clamp(0, 1)

    add_preset("noise", AttackPreset("walkthrough-noise", label="Noise", source="a test"))
    try:
        yield
    finally:
        DEFENSES._items.pop("walkthrough")
        attacks.ATTACKS._items.pop("walkthrough-noise")
        attacks.PRESETS._items.pop("noise")


@requires_mnist
def test_a_new_defense_and_attack_need_no_edit_elsewhere(walkthrough, tmp_path: Path) -> None:
    cli, db = CliRunner(), str(tmp_path / "w.sqlite")
    listed = cli.invoke(app, ["ls", "defenses"])
    assert "walkthrough" in listed.output
    args = ["run", "--defense", "walkthrough", "--model", "tiny-cnn", "--dataset", "mnist"]
    args += ["--preset", "demo-mnist", "--epochs", "1", "--train-subset", "128"]
    args += ["--test-subset", "32", "--attacks", "clean,noise,fgsm", "--param", "lam=0.25"]
    res = cli.invoke(app, [*args, "--db", db, "--runs-dir", str(tmp_path), "--no-progress"])
    assert res.exit_code == 0, res.output
    table = cli.invoke(app, ["table", "--paper", "--db", db])
    assert "Walkthrough" in table.output
    with Session(bdb.connect(db)) as s:
        run = s.scalars(select(bdb.Run)).one()
        assert run.spec["defense_params"]["lam"] == 0.25
        attacked = {e.attack for e in run.evaluations}
        assert attacked == {"clean", "noise", "fgsm"}
        assert all(e.provenance and "git_commit" in e.provenance for e in run.evaluations)


def test_ctrl_c_says_what_was_kept(monkeypatch, tmp_path: Path) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.jobs.train_job", interrupted)  # reached via bench.cli.deferred
    args = ["run", "--defense", "mart", "--model", "tiny-cnn", "--no-eval"]
    res = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "c.sqlite")])
    assert res.exit_code == 130
    assert "run the same command again to resume" in res.output


def test_a_resume_appends_provenance_and_keeps_the_first() -> None:
    run = bdb.Run(provenance={})
    _start(run, "cpu")
    first = dict(run.provenance)
    _start(run, "cpu")
    assert {k: run.provenance[k] for k in first} == first
    assert len(run.provenance["resumed"]) == 1 and "at" in run.provenance["resumed"][0]


@requires_mnist
def test_best_and_last_of_the_same_weights_are_attacked_once(tmp_path: Path) -> None:
    engine = bdb.connect(tmp_path / "once.sqlite")
    spec = resolve(
        "natural",
        "tiny-cnn",
        "mnist",
        "demo-mnist",
        train_subset=64,
        test_subset=16,
        overrides={"epochs": 1},
    )
    jobs.train_job(engine, spec, runs_dir=tmp_path / "runs", progress=False)
    evs = jobs.eval_job(engine, spec.name, attack_names=["clean", "fgsm"], progress=False)
    assert len(evs) == 4 and len({e.id for e in evs}) == 2  # best == last: one row each
    df = evaluations_frame(engine)
    assert sorted(zip(df["checkpoint"], df["attack"], strict=True)) == [
        ("best", "clean"),
        ("best", "fgsm"),
        ("last", "clean"),
        ("last", "fgsm"),
    ]


@requires_mnist
def test_seeds_are_one_run_each_and_tables_aggregate_them(tmp_path: Path) -> None:
    cli, db = CliRunner(), str(tmp_path / "seeds.sqlite")
    args = ["run", "--defense", "standard", "--model", "tiny-cnn", "--dataset", "mnist"]
    args += ["--preset", "demo-mnist", "--epochs", "1", "--train-subset", "128"]
    args += ["--test-subset", "32", "--attacks", "clean,fgsm", "--seeds", "0,1"]
    res = cli.invoke(app, [*args, "--db", db, "--runs-dir", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    with Session(bdb.connect(db)) as s:
        assert sorted(r.seed for r in s.scalars(select(bdb.Run))) == [0, 1]
    table = cli.invoke(app, ["table", "--paper", "--db", db]).output
    assert "n=2 (0,1)" in table and " ± " in table
    assert "trained in fp32" in table and "threads, channels_last" in table  # what decides bits
    out = cli.invoke(app, ["table", "--paper", "--format", "csv", "--db", db]).output
    assert len({row["run"] for row in csv.DictReader(io.StringIO(out))}) == 2  # per seed
