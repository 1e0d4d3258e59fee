"""The gradient-masking audit, worst cases and Wilson intervals, on real MNIST through the
real attacks and the real eval path (eval_job on a temporary database)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_mnist
from sqlalchemy.orm import Session
from torch import nn

import attacks
from bench import jobs
from bench.eval import audit
from bench.eval.checks import consistency_checks, convergence_margin, subset_checks
from bench.eval.perpoint import wilson_interval, worst_case
from bench.jobs import train as jobs_train
from bench.models import MODELS
from bench.spec.run import resolve
from bench.store import db as bdb
from bench.store.checkpoints import save_weights

ATTACKS = ("clean", "fgsm", "pgd20", "cw20", "spsa")


class Saturated(nn.Module):
    """A linear classifier whose logits are scaled by 1e4: the softmax saturates, the CE
    input gradient underflows to exactly zero, and CE attacks stall (gradient masking)."""

    def __init__(self, scale: float = 1e4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.body(x)


class Honest(Saturated):
    def __init__(self) -> None:
        super().__init__(scale=1.0)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # A cheaper SPSA (10 Adam steps, 32 samples) under the preset's name: the audit reads
    # evaluations by preset name, and the settings used are stored with the evaluation.
    spsa = attacks.PRESETS.get("spsa")
    cheap = dataclasses.replace(spsa, params={**spsa.params, "steps": 10, "samples": 32})
    monkeypatch.setitem(attacks.PRESETS._items, "spsa", cheap)
    monkeypatch.setitem(MODELS._items, "test-saturated", lambda **_: Saturated())
    monkeypatch.setitem(MODELS._items, "test-honest", lambda **_: Honest())


def store_run(engine, model_name: str, linear: nn.Module, runs: Path) -> str:
    """A 'trained' run whose best checkpoint holds ``linear``'s weights."""
    spec = resolve("natural", model_name, "mnist", "demo-mnist", test_subset=100)
    with Session(engine) as s:
        run = jobs_train.get_or_create_run(s, spec, runs, None)
        wrapper = Saturated()
        wrapper.body[1].load_state_dict(linear[1].state_dict())
        save_weights(
            wrapper,
            Path(run.run_dir) / "best.safetensors",
            {"run": run.name, "epoch": "1", "robust_acc": "0.0"},
        )
        jobs_train._sync_checkpoints(s, run, Path(run.run_dir))
        run.status = "done"
        s.commit()
        return run.name


def statuses(engine, run: str) -> dict[str, str]:
    return {r["check"]: r["status"] for r in bdb.audit_records(engine, [run])}


@requires_mnist
def test_audit_flags_saturated_model_not_honest_one(registered, trained_linear, tmp_path) -> None:
    engine = bdb.connect(tmp_path / "a.sqlite")
    masked = store_run(engine, "test-saturated", trained_linear, tmp_path / "runs")
    honest = store_run(engine, "test-honest", trained_linear, tmp_path / "runs")
    for run in (masked, honest):
        jobs.eval_job(engine, run, attack_names=ATTACKS, checkpoints=("best",), progress=False)

    acc = {e["attack"]: e["correct"] for e in _evals(engine, masked)}
    ref = {e["attack"]: e["correct"] for e in _evals(engine, honest)}
    # Same weights, same predictions: only the gradients differ, and PGD (CE) stalls.
    assert acc["clean"] == ref["clean"] > 80
    assert acc["pgd20"] > ref["pgd20"] + 20 and acc["spsa"] < acc["pgd20"] - 5, (acc, ref)
    got = statuses(engine, masked)
    assert got["zero-gradients"] == "flag"  # CE gradient underflows to exactly 0
    assert got["spsa-not-below-pgd"] == "flag"  # the gradient-free attack beats PGD
    assert got["whitebox-le-blackbox"] == "not-evaluated"  # no transfer rows: never a pass
    assert got["autoattack-le-pgd20"] == "not-evaluated"
    print({k: (r["status"], r["detail"]) for k, r in _rows(engine, masked).items()})
    print(acc, ref)
    rows = _rows(engine, masked)
    assert rows["zero-gradients"]["value"] > 0.5

    good = statuses(engine, honest)
    assert {k for k, v in good.items() if v == "flag"} == set(), good
    assert good["zero-gradients"] == "ok" and good["fgsm-ge-pgd"] == "ok"
    # Recomputing (bench audit) gives the same answer, from the stored rows.
    again = audit.audit_runs(engine, [honest])
    assert {c.check: c.status for c in again[(honest, "best")]} == good


def _rows(engine, run: str) -> dict[str, dict]:
    return {r["check"]: r for r in bdb.audit_records(engine, [run])}


def _evals(engine, run: str) -> list[dict]:
    with Session(engine) as s:
        r = bdb.find_run(s, run)
        return [{"attack": e.attack, "correct": e.correct, "n": e.n} for e in r.evaluations]


def test_consistency_checks_on_hand_built_masks() -> None:
    n = 200  # tolerance: max(2, ceil(1.0)) = 2 points
    assert audit.tolerance(n) == 2 and audit.tolerance(10_000) == 50
    clean = np.ones(n, bool)
    clean[:10] = False  # 190 correct
    fgsm = clean.copy()
    fgsm[10:60] = False  # 140
    pgd20 = fgsm.copy()
    pgd20[60:80] = False  # 120
    spsa = pgd20.copy()
    spsa[80:83] = False  # 117: 3 below PGD-20 > tolerance 2
    pgd100 = pgd20.copy()
    pgd100[10:12] = True  # 122: 2 above PGD-20, within tolerance
    masks = {"clean": clean, "fgsm": fgsm, "pgd20": pgd20, "pgd100": pgd100, "spsa": spsa}
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["robust-le-clean"].status == "ok" and res["robust-le-clean"].value == 0
    assert res["fgsm-ge-pgd"].status == "ok" and res["fgsm-ge-pgd"].value == 2
    masks["pgd100"][12] = True  # 3 above: PGD-100 weaker than PGD-20 is flagged
    assert consistency_checks(masks, n)[1].status == "flag"
    del masks["pgd100"]
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["fgsm-ge-pgd"].value == -20 and "PGD-100 not evaluated" in res["fgsm-ge-pgd"].detail
    assert res["pgd-finds-fgsm"].value == 0
    assert res["spsa-not-below-pgd"].status == "flag" and res["spsa-not-below-pgd"].value == 3
    masks["spsa"][82] = True  # 2 below: within tolerance
    assert consistency_checks(masks, n)[4].status == "ok"
    # PGD-20 robust where FGSM broke 3 points (per point), and a transfer attack stronger
    # than white-box PGD by 5 points.
    masks["pgd20"] = pgd20.copy()
    masks["pgd20"][10:13] = True
    masks["transfer-pgd20"] = masks["pgd20"].copy()
    masks["transfer-pgd20"][100:105] = False
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["pgd-finds-fgsm"].status == "flag" and res["pgd-finds-fgsm"].value == 3
    assert res["whitebox-le-blackbox"].status == "flag"
    assert res["whitebox-le-blackbox"].value == 123 - 118


def test_adaptive_checks_on_hand_built_masks() -> None:
    """BPDA/EOT/RayS breaking more than the tolerance beyond PGD-20 are flagged; within it
    they pass; without them the check says not-evaluated."""
    n = 200  # tolerance 2
    pgd20 = np.ones(n, bool)
    pgd20[:100] = False  # 100 correct
    masks = {"clean": np.ones(n, bool), "pgd20": pgd20}
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["adaptive-not-below-pgd"].status == "not-evaluated"
    assert res["pgd-converged"].status == "not-evaluated"
    for attack in ("bpda-pgd20", "rays", "eot-pgd20", "ls-pga"):
        stronger = pgd20.copy()
        stronger[100:102] = False  # 2 fewer: within the tolerance
        res = {c.check: c for c in consistency_checks({**masks, attack: stronger}, n)}
        assert res["adaptive-not-below-pgd"].status == "ok", attack
        stronger[102] = False  # 3 fewer: flagged
        res = {c.check: c for c in consistency_checks({**masks, attack: stronger}, n)}
        check = res["adaptive-not-below-pgd"]
        assert check.status == "flag" and check.value == 3, attack


def test_an_adaptive_attack_must_beat_the_strongest_pgd_stored() -> None:
    """RayS 10 under PGD-20 but above PGD-100: PGD-20 was short (pgd-converged), PGD's
    gradient was not masked. 3 under PGD-100 is a flag again."""
    n = 200
    pgd20, pgd100, rays = (np.ones(n, bool) for _ in range(3))
    pgd20[:100], pgd100[:130], rays[:110] = False, False, False  # 100, 70, 90 correct
    masks = {"clean": np.ones(n, bool), "pgd20": pgd20, "pgd100": pgd100, "rays": rays}
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["adaptive-not-below-pgd"].status == "ok"
    assert res["adaptive-not-below-pgd"].value == -20
    assert "PGD-20 100, pgd100 70, rays 90" in res["adaptive-not-below-pgd"].detail
    assert res["pgd-converged"].status == "flag"
    rays[:133] = False  # 67 correct
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["adaptive-not-below-pgd"].status == "flag"
    assert res["adaptive-not-below-pgd"].value == 3


def test_convergence_margin_is_the_lower_end_of_the_weaker_interval() -> None:
    """Hand-computed Wilson lower ends (z = 1.959964): 100 of 200 -> 0.431361, i.e. 86.27
    points, a margin of 13; 80 of 200 -> 0.334606 (66.92 points), 13; 5 of 10,000 ->
    0.000214 (2.14 points), 2, under the tolerance 50, which then holds."""
    assert convergence_margin(100, 200, 2) == 13
    assert convergence_margin(80, 200, 2) == 13
    assert convergence_margin(5, 10_000, 50) == 50


def test_convergence_checks_on_hand_built_masks() -> None:
    """PGD-100 or PGD-20 x5 inside PGD-20's 95% interval (13 points of 100 correct of 200)
    pass; one point further is a flag."""
    n = 200
    pgd20 = np.ones(n, bool)
    pgd20[:100] = False  # 100 correct
    masks = {"clean": np.ones(n, bool), "pgd20": pgd20}
    for attack in ("pgd100", "pgd20-r5"):
        stronger = pgd20.copy()
        stronger[100:113] = False  # 13 fewer: inside the interval
        res = {c.check: c for c in consistency_checks({**masks, attack: stronger}, n)}
        assert res["pgd-converged"].status == "ok", attack
        assert "margin 13" in res["pgd-converged"].detail
        stronger[113] = False  # 14 fewer: flagged
        res = {c.check: c for c in consistency_checks({**masks, attack: stronger}, n)}
        assert res["pgd-converged"].status == "flag", attack
        assert res["pgd-converged"].value == 14


def test_convergence_is_judged_one_rung_up_once_pgd100_x5_is_stored() -> None:
    """PGD-100 breaking 20 more than PGD-20 flags PGD-20; with PGD-100 x5 stored, the check
    asks whether PGD-100 has converged: restarts inside PGD-100's interval (margin 13 of 80)
    pass, one point further flags. The evidence keeps PGD-20's gap."""
    n = 200
    pgd20, pgd100 = np.ones(n, bool), np.ones(n, bool)
    pgd20[:100] = False  # 100 correct
    pgd100[:120] = False  # 80 correct
    masks = {"clean": np.ones(n, bool), "pgd20": pgd20, "pgd100": pgd100}
    res = {c.check: c for c in consistency_checks(masks, n)}
    assert res["pgd-converged"].status == "flag" and res["pgd-converged"].value == 20
    r5 = pgd100.copy()
    r5[120:133] = False  # 67 correct
    res = {c.check: c for c in consistency_checks({**masks, "pgd100-r5": r5}, n)}
    ok = res["pgd-converged"]
    assert ok.status == "ok" and ok.value == 13
    assert "pgd100 80, pgd100-r5 67" in ok.detail and "PGD-20 100, 20 more" in ok.detail
    r5[133] = False  # 66 correct
    res = {c.check: c for c in consistency_checks({**masks, "pgd100-r5": r5}, n)}
    assert res["pgd-converged"].status == "flag" and res["pgd-converged"].value == 14


def test_each_check_is_judged_where_its_attacks_were_run() -> None:
    """The paper runs: FGSM, PGD-20, CW-inf and transfers on all 10,000 points, AutoAttack
    on the first 1,000, SPSA on the first 500. The subset with most attacks is judged, and
    the AutoAttack and SPSA checks come from their own subsets (SPSA 3 under PGD-20 on its
    200 points: flagged there), not left not-evaluated."""
    big, mid, small = 1000, 400, 200  # tolerances 5, 2, 2
    ones = {k: np.ones(k, bool) for k in (big, mid, small)}
    by_n = {
        big: {"clean": ones[big], "fgsm": ones[big], "pgd20": ones[big], "cw20": ones[big]},
        mid: {"clean": ones[mid], "pgd20": ones[mid], "autoattack": ones[mid]},
        small: {"clean": ones[small], "pgd20": ones[small], "spsa": ones[small].copy()},
    }
    by_n[small]["spsa"][:3] = False
    res = {c.check: c for c in subset_checks(by_n, big)}
    assert res["fgsm-ge-pgd"].n == big and res["fgsm-ge-pgd"].status == "ok"
    assert res["autoattack-le-pgd20"].n == mid and res["autoattack-le-pgd20"].status == "ok"
    assert res["spsa-not-below-pgd"].n == small and res["spsa-not-below-pgd"].status == "flag"
    assert res["pgd-converged"].status == "not-evaluated"  # nowhere: says so
    only_big = {c.check: c for c in consistency_checks(by_n[big], big)}
    assert only_big["spsa-not-below-pgd"].status == "not-evaluated"  # what it was before


def test_zero_gradient_check_counts_vanished_gradients() -> None:
    norms = np.array([0.0, 1e-13, 1e-12, 2e-12, 0.5, np.nan])
    r = audit.zero_gradient_check(norms)
    assert r.value == pytest.approx(3 / 6) and r.status == "flag"  # 3 > tolerance 2
    assert "(3 exactly zero or non-finite)" not in r.detail and "2 exactly zero" in r.detail


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        # Hand-computed: p = k/n, z = 1.959964; centre = (p + z^2/2n)/(1 + z^2/n),
        # half = z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2).
        (50, 100, 0.403832, 0.596168),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (96, 100, 0.901629, 0.984337),
    ],
)
def test_wilson_interval_hand_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-6)
    assert math.isnan(wilson_interval(0, 0)[0])


def test_worst_case_is_and_of_masks_on_same_points(tmp_path: Path) -> None:
    engine = bdb.connect(tmp_path / "w.sqlite")
    with Session(engine) as s:
        run = bdb.Run(
            key="k",
            name="r",
            defense="natural",
            model="m",
            dataset="mnist",
            preset="p",
            spec={},
            seed=0,
            run_dir="",
        )
        s.add(run)
        s.flush()
        s.add(
            bdb.Checkpoint(run_id=run.id, tag="best", epoch=1, path="", sha256="A", robust_acc=0.0)
        )
        for i, (atk, bits, sha) in enumerate(
            [
                ("fgsm", [1, 1, 0, 1], "A"),
                ("pgd20", [1, 0, 1, 1], "A"),
                ("apgd-ce", [1, 1, 1, 0], "A"),
                ("apgd-t", [1, 1, 1, 1], "A"),
                ("fab-t", [1, 1, 1, 1], "A"),
                ("square", [0, 1, 1, 1], "A"),
                ("cw20", [0, 0, 0, 0], "OLD"),  # another checkpoint file: never mixed in
            ]
        ):
            m = np.array(bits, bool)
            s.add(
                bdb.Evaluation(
                    key=str(i),
                    run_id=run.id,
                    checkpoint="best",
                    checkpoint_epoch=1,
                    checkpoint_sha256=sha,
                    attack=atk,
                    attack_params={},
                    dataset="mnist",
                    n=4,
                    correct=int(m.sum()),
                    accuracy=m.mean(),
                    seconds=0.0,
                    seed=0,
                    robust_mask=bdb.pack_mask(m),
                )
            )
        s.commit()
    mask, n, missing = worst_case(engine, "r", "best", ["fgsm", "pgd20"])
    assert n == 4 and missing == [] and mask.tolist() == [True, False, False, True]
    mask, _, missing = worst_case(engine, "r", "best", ["autoattack", "cw20", "pgd100"])
    assert mask.tolist() == [False, True, True, False] and missing == ["cw20", "pgd100"]
    assert worst_case(engine, "r", "last", ["fgsm"]) == (None, 0, ["fgsm"])
