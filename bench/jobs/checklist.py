"""The lecture's checklist as a job: look at a model before attacking it.

``adaptive_eval`` probes a run's best checkpoint for randomness and for missing or zero
input gradients (bench/eval/masking.py), and evaluates the attacks the findings call for
beside PGD-20; the audit then compares them (docs/audit.md: ``adaptive-not-below-pgd``,
``pgd-converged``). Where PGD-100 goes below PGD-20's 95% interval, it climbs one rung
(PGD-100 with 5 restarts) to show whether PGD has converged by PGD-100. Where BPDA is
picked, its own rung (BPDA with PGD-100 x5's settings) is evaluated beside it; behind a
quantiser (a thermometer encoding, bit depth, feature squeezing), LS-PGA too.
``bench audit RUN --adaptive`` runs it.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench import data as bdata
from bench.core.constants import ZOO_TEST_SUBSET, trained_spec
from bench.eval.checks import FLAG, LAST_RUNG, subset_checks
from bench.eval.loop import to_float
from bench.eval.masking import Masking, adaptive_attack, model_attacks, probe
from bench.eval.perpoint import current_evaluations, judged_n, masks_by_n
from bench.jobs.evaluate import eval_job
from bench.store.db import find_run
from bench.store.loading import checkpoint_model

BPDA_RUNG = "bpda-pgd100-r5"


def adaptive_eval(
    engine: Engine, run_name: str, *, data_root: str | None, device: str, progress: bool
) -> tuple[Masking, str]:
    """The lecture's checklist step for one run: probe its best checkpoint for randomness
    and missing or zero input gradients (on its first 100 test points), pick the attack it
    needs (EOT, BPDA or plain PGD-20) and evaluate it, the hard-label RayS and PGD-100
    beside PGD-20, and the rungs where they are called for; the audit that follows compares
    them (``adaptive-not-below-pgd``, ``pgd-converged``). Returns the findings and a line
    naming what was evaluated."""
    with Session(engine, expire_on_commit=False) as s:
        run = find_run(s, run_name)
        if run is None:
            raise LookupError(f"no run named {run_name!r} in the database (see `bench ls runs`)")
        ckpt = next((c for c in run.checkpoints if c.tag == "best"), None)
        if ckpt is None:
            raise LookupError(f"run {run.name} has no 'best' checkpoint (is it trained?)")
        # the points it was evaluated on: a trained run's test subset, else (an external
        # run) those of its largest stored evaluation, so the checks compare like with like
        stored = max((e.n for e in run.evaluations), default=None)
        n = trained_spec(run.spec).get("test_subset") or stored or ZOO_TEST_SUBSET
        x, y = bdata.subset(*bdata.load_split(run.dataset, False, data_root), min(n, 100))
        model = checkpoint_model(run, ckpt).to(device)
        found = probe(model, to_float(x).to(device), y.to(device))
        name = run.name
    attack = adaptive_attack(found)
    # rays: labels only; pgd100: has PGD-20 converged? BPDA climbs its rung at once: it is
    # the attack behind a masked model's number
    climb = [BPDA_RUNG] if attack == "bpda-pgd20" else []
    climb += model_attacks(found)  # LS-PGA behind a quantiser
    names = list(dict.fromkeys(["clean", "pgd20", attack, *climb, "rays", "pgd100"]))
    where = {"test_subset": n, "data_root": data_root, "device": device, "progress": progress}
    eval_job(engine, name, attack_names=names, **where)
    evaluated = " and ".join([attack, *climb])
    short = [tag for tag in ("best", "last") if _pgd_short(engine, name, tag)]
    if short:
        eval_job(engine, name, attack_names=[LAST_RUNG], checkpoints=short, **where)
        evaluated += f", then {LAST_RUNG} on {' and '.join(short)}"
    return found, evaluated


def _pgd_short(engine: Engine, run_name: str, tag: str) -> bool:
    """Whether ``pgd-converged`` flags the checkpoint on what is stored now (PGD-100 went
    below PGD-20's 95% interval), so that the checklist climbs a rung."""
    with Session(engine) as s:
        _, evs = current_evaluations(s, run_name, tag)
    by_n = masks_by_n(evs)
    if not by_n:
        return False
    check = next(c for c in subset_checks(by_n, judged_n(by_n)) if c.check == "pgd-converged")
    return check.status == FLAG
