"""AutoAttack through pyautoattack: standard settings, RNG hygiene, chaining and resume."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_mnist
from eval_helpers import trained_run
from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import nn

import attacks
from attacks.autoattack import STANDARD_ORDER, AutoAttackPart, standard_autoattack
from attacks.base import check_bounds
from bench import jobs
from bench.store import db as bdb

CHEAP = {"n_iter": 10, "n_target_classes": 3, "n_queries": 100}


def test_settings_are_pyautoattacks_standard(trained_linear: nn.Module) -> None:
    aa = standard_autoattack(trained_linear, 0.3, 0, "cpu")
    assert aa.attacks_to_run == list(STANDARD_ORDER)
    assert (aa.apgd.n_iter, aa.apgd.n_restarts, aa.apgd.thr_decr) == (100, 1, 0.75)
    assert (aa.apgd_targeted.n_target_classes, aa.apgd_targeted.n_restarts) == (9, 1)
    assert (aa.fab.n_target_classes, aa.fab.n_restarts, aa.fab.n_iter) == (9, 1, 100)
    assert (aa.square.n_queries, aa.square.p_init) == (5000, 0.8)
    p = attacks.build("apgd-t", eps=0.3).params()
    assert (p["n_iter"], p["n_target_classes"], p["n_queries"]) == (100, 9, 5000)
    cheap = standard_autoattack(trained_linear, 0.3, 0, "cpu", **CHEAP)
    # The checkpoints of APGD's step-size schedule follow the iteration count.
    assert (cheap.apgd.n_iter, cheap.apgd.n_iter_2, cheap.apgd_targeted.n_iter) == (10, 2, 10)
    assert (cheap.fab.n_target_classes, cheap.square.n_queries) == (3, 100)


def rng_snapshot() -> tuple:
    return torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate()


def same_rng(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_global_rng_is_restored(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    before = rng_snapshot()
    for part in ("apgd-ce", "square"):
        AutoAttackPart(eps=0.1, part=part, **CHEAP)(trained_linear, x[:16], y[:16])
    assert same_rng(before, rng_snapshot())
    # The control: pyautoattack on its own does reseed the process's RNG.
    from pyautoattack.autopgd_base import APGDAttack

    APGDAttack(trained_linear, n_iter=2, eps=0.1, seed=0, device="cpu").perturb(x[:4], y[:4])
    assert not same_rng(before, rng_snapshot())


def test_ensemble_obeys_the_attack_contract(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    x, y = x[:32], y[:32]
    model = trained_linear.train()
    x_adv = attacks.build("autoattack", eps=0.1, **CHEAP)(model, x, y)
    assert model.training, "caller's mode not restored"
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    check_bounds(x_adv, x, 0.1)
    model.eval()
    with torch.no_grad():
        acc = (model(x_adv).argmax(1) == y).float().mean().item()
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert acc < clean - 0.3


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One adversarially trained run (PGD-3 at eps 0.1) in a database copied per test."""
    tmp = tmp_path_factory.mktemp("aa")
    engine, spec = trained_run(tmp, "standard", test_subset=32)
    engine.dispose()
    return tmp / "bench.sqlite", spec.name


@pytest.fixture
def engine(template: tuple[Path, str], tmp_path: Path):
    shutil.copy(template[0], tmp_path / "copy.sqlite")
    return bdb.connect(tmp_path / "copy.sqlite")


def rows(engine, attack: str | None = None) -> list[bdb.Evaluation]:
    with Session(engine) as s:
        q = select(bdb.Evaluation).order_by(bdb.Evaluation.id)
        return [e for e in s.scalars(q) if attack is None or e.attack == attack]


def evaluate(engine, run: str, names: list[str]) -> list[bdb.Evaluation]:
    # Options are per attack preset: the cheap settings for AutoAttack and its parts.
    cheap = {n: CHEAP for n in names if attacks.PRESETS.get(n).protocol == "autoattack"}
    return jobs.eval_job(
        engine,
        run,
        attack_names=names,
        checkpoints=["last"],
        progress=False,
        attack_options=cheap,
    )


@requires_mnist
def test_worst_case_chains_parts_and_beats_pgd20(engine, template) -> None:
    run = template[1]
    by = {e.attack: e for e in evaluate(engine, run, ["clean", "pgd20", "autoattack"])}
    clean, pgd, aa = by["clean"].robust(), by["pgd20"], by["autoattack"]
    parts = [rows(engine, p) for p in STANDARD_ORDER]
    assert all(len(r) == 1 for r in parts), "one row per AutoAttack part"
    parts = [r[0] for r in parts]
    attacked = [p.attack_params["n_attacked"] for p in parts]
    # Each part attacks exactly the points still robust after the ones before.
    assert attacked == [int(clean.sum())] + [p.correct for p in parts[:-1]]
    worst = clean.copy()
    for p in parts:
        assert not (p.robust() & ~worst).any(), f"{p.attack} revived a broken point"
        worst &= p.robust()
    assert np.array_equal(aa.robust(), worst)
    assert aa.correct == parts[-1].correct
    assert aa.attack_params["part_correct"] == {p.attack: p.correct for p in parts}
    assert 0 < aa.correct <= pgd.correct < clean.sum()


@requires_mnist
def test_interrupted_autoattack_resumes_without_recomputing(engine, template, monkeypatch):
    run, called = template[1], []
    real = AutoAttackPart.perturb

    def spy(self, model, x, y):
        called.append(self.part)
        if self.part == "fab-t" and crash:
            raise KeyboardInterrupt("simulated kill during FAB-T")
        return real(self, model, x, y)

    monkeypatch.setattr(AutoAttackPart, "perturb", spy)
    crash = False
    first = evaluate(engine, run, ["apgd-ce"])[0]
    assert called == ["apgd-ce"] and [e.attack for e in rows(engine)] == ["apgd-ce"]

    called.clear()
    crash = True
    with pytest.raises(KeyboardInterrupt):
        evaluate(engine, run, ["autoattack"])
    assert called == ["apgd-t", "fab-t"], "apgd-ce was recomputed"
    assert [e.attack for e in rows(engine)] == ["apgd-ce", "apgd-t"]

    called.clear()
    crash = False
    aa = evaluate(engine, run, ["autoattack"])[0]
    assert called == ["fab-t", "square"]
    stored = rows(engine)
    assert [e.attack for e in stored] == ["apgd-ce", "apgd-t", "fab-t", "square", "autoattack"]
    assert stored[0].id == first.id and stored[0].created_at == first.created_at
    assert aa.attack_params["part_evaluation_ids"]["apgd-ce"] == first.id

    called.clear()
    assert evaluate(engine, run, ["autoattack", "square"])[0].id == aa.id
    assert called == [] and len(rows(engine)) == 5
