"""The eps sweep of the lecture's checklist: one attack at growing budgets, up to one at
which every model must fall to about 0% (L-inf eps 1 lets the attack paint any image).

A model whose accuracy does not fall with eps, or stays well above 0% at the top of the
sweep, hides its gradients from the attack. Each point of the sweep is an ordinary stored
evaluation at its own eps (``eval_job(eps=...)``): repeated sweeps reuse them, and the
audit, which judges a run at its own budget, never mixes them in (bench/eval/perpoint.py).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench.core.constants import LINF, MAX_L2_EPS, MONITOR_ATTACKS, SWEEP_TOP, Tag, run_norm
from bench.jobs.evaluate import eval_job
from bench.store.db import Evaluation, find_run

FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # times the run's budget
TOP = {LINF: SWEEP_TOP}  # where every model must fall to ~0%: L-inf 1 reaches any image


def default_sweep(eps: float, norm: str) -> list[float]:
    """The run's budget times ``FACTORS``, then the norm's top (L-inf 1), within range."""
    top = TOP.get(norm, MAX_L2_EPS)
    values = {round(eps * f, 6) for f in FACTORS if 0 < eps * f <= top}
    return sorted(values | ({top} if norm in TOP else set()))


def eps_sweep(
    engine: Engine,
    run_name: str,
    *,
    attack: str | None = None,
    eps_values: list[float] | None = None,
    **settings: object,
) -> tuple[str, list[Evaluation]]:
    """Evaluate ``attack`` (default: PGD-20 in the run's norm) on the best checkpoint at
    every eps of the sweep; ``settings`` go to ``eval_job``. Returns the attack's name and
    the evaluations, by growing eps."""
    with Session(engine) as s:
        run = find_run(s, run_name)
        if run is None:
            raise LookupError(f"no run named {run_name!r} in the database (see `bench ls runs`)")
        norm = run_norm(run.spec)
        eps, name = float(run.spec["eps"]), run.name
    attack = attack or MONITOR_ATTACKS[norm]
    if attacks.norm_of(attack) != norm:
        raise ValueError(f"{attack} is not in the run's norm ({norm}): sweep an attack in it")
    values = eps_values or default_sweep(eps, norm)
    best = (Tag.BEST.value,)
    evs = [
        eval_job(engine, name, attack_names=[attack], checkpoints=best, eps=e, **settings)[0]  # type: ignore[arg-type]
        for e in values
    ]
    return attack, evs
