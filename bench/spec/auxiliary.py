"""Auxiliary runs: the natural runs other runs depend on, built in one place.

Two kinds of run need a naturally trained model with a target run's data and schedule:
a semi-supervised run's pseudo-labeller (the same architecture, bench/data/unlabelled.py)
and a transfer attack's surrogate (ResNet-50 for CIFAR-10, bench/eval/transfer.py). A
distilled run needs its teacher (defenses/distillation.py): the same data, architecture
and schedule, trained by the defense the student names. All are specs like any other, so
they are trained once, resumed, listed and skipped as usual.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import defenses
from bench.core.constants import LINF
from bench.data import DATASETS, load_split
from bench.data.unlabelled import parse_source
from bench.spec.run import RunSpec, resolve

SCHEDULE = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "milestones", "lr_gamma")


def _schedule(spec: RunSpec) -> dict[str, Any]:
    """``spec``'s schedule, eps and (where not L-inf: its eps is in it) threat model."""
    out: dict[str, Any] = {k: getattr(spec, k) for k in SCHEDULE}
    out["eps"] = spec.eps
    if spec.norm != LINF:
        out["norm"] = spec.norm
    return out


def natural_twin(
    spec: RunSpec, *, model: str | None = None, overrides: dict[str, Any] | None = None
) -> RunSpec:
    """Natural training of ``model`` (default: the run's own) with ``spec``'s data, preset,
    seed, subsets, eps, schedule, precision and monitored test points; ``overrides``
    change the schedule (e.g. epochs). The monitor matters for the cost: a surrogate
    monitored on the whole test set runs PGD-20 on all of it every epoch (10,000 MNIST
    points, 160 s an epoch on one core, against 16 s on the 1,000 of the paper runs)."""
    schedule = _schedule(spec)
    schedule.update(overrides or {})
    return resolve(
        "natural",
        model or spec.model,
        spec.dataset,
        spec.preset,
        seed=spec.seed,
        train_subset=spec.train_subset,
        test_subset=spec.test_subset,
        overrides=schedule,
        precision=spec.precision,
        monitor_subset=spec.monitor_subset,
    )


def teacher_spec(spec: RunSpec) -> RunSpec | None:
    """The run ``spec``'s defense learns from (its ``teacher``), or None: the teacher's
    defense with the student's teacher settings, on the student's data, model, seed,
    eps and schedule."""
    student = defenses.build(spec.defense, **spec.params())
    if student.teacher is None:
        return None
    return resolve(
        student.teacher,
        spec.model,
        spec.dataset,
        spec.preset,
        seed=spec.seed,
        train_subset=spec.train_subset,
        test_subset=spec.test_subset,
        overrides=_schedule(spec),
        defense_overrides=student.teacher_params(),
        precision=spec.precision,
        monitor_subset=spec.monitor_subset,
    )


def labeller_spec(spec: RunSpec) -> RunSpec:
    """The natural run whose predictions label the unlabelled images of ``spec``."""
    return natural_twin(spec)


def attach_unlabelled(spec: RunSpec, source: str, data_root: str | None = None) -> RunSpec:
    """``spec`` with an unlabelled source, its size and its pseudo-labeller recorded."""
    DATASETS.get(spec.dataset)
    src = parse_source(source)
    if src.kind == "heldout":
        if src.dataset != spec.dataset:
            raise ValueError(f"held-out images of {src.dataset} for a {spec.dataset} run")
        n_total = len(load_split(src.dataset, True, data_root)[1])
        n_lab = spec.train_subset if spec.train_subset is not None else n_total
        if src.start < n_lab:
            raise ValueError(
                f"held-out images {src.start}..{src.stop - 1} overlap the labelled "
                f"first {n_lab:,}: use --train-subset <= {src.start}"
            )
        if src.stop > n_total:
            raise ValueError(f"{src.dataset} has only {n_total:,} training images (< {src.stop})")
    n = src.count(data_root)
    return dataclasses.replace(
        spec, unlabelled=src.text, n_unlabelled=n, pseudo_labeller=labeller_spec(spec).name
    )
