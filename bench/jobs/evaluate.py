"""Evaluation jobs: the one path from "attack this run" to evaluation rows.

``eval_job`` resolves a run's checkpoints and test points, builds an ``EvalSpec`` per
(attack, checkpoint), and hands each to its protocol (bench/eval/protocols.py), which finds
the stored row or computes and stores a new one. Our runs and model-zoo entries both come
through here; afterwards the gradient-masking audit is refreshed from what is stored.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import nn

import attacks
from bench import data as bdata
from bench.core import provenance
from bench.core.constants import (
    ALL_CHECKPOINTS,
    CHECKPOINTS,
    DEFAULT_ATTACKS,
    EVAL_BATCH,
    is_external,
    run_norm,
    trained_spec,
)
from bench.eval.audit import audit_runs
from bench.eval.context import EvalContext
from bench.eval.protocols import evaluate
from bench.jobs.train import train_job
from bench.spec.evaluation import EvalSpec
from bench.spec.run import RunSpec, judged_eps
from bench.store import claims
from bench.store.checkpoints import verified
from bench.store.db import Checkpoint, Evaluation, Run, find_run
from bench.store.loading import checkpoint_model


def eval_job(
    engine: Engine,
    run_name: str,
    *,
    attack_names: Iterable[str] = DEFAULT_ATTACKS,
    checkpoints: Iterable[str] | None = None,
    test_subset: int | None = None,
    eps: float | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    batch_size: int = EVAL_BATCH,
    seed: int = 0,
    progress: bool = True,
    attack_options: dict[str, dict[str, Any]] | None = None,
    skip_wrong: bool = True,
    wait: bool = True,
) -> list[Evaluation]:
    """Evaluate a run's checkpoints; evaluations already in the database are not redone.

    ``attack_options`` maps an attack preset to its options (``EvalSpec.options``), e.g.
    ``{"autoattack": {"n_iter": 10}, "transfer-pgd20": {"surrogate_model": "resnet18"}}``.
    One worker at a time computes an evaluation (its claim): one that another live worker
    is computing is waited for (``wait``), or left to it: then ``claims.Busy`` is raised
    once the others are done.
    """
    names = list(attack_names)
    asked = None if checkpoints is None else list(checkpoints)
    if not names or asked == []:
        raise ValueError("nothing to evaluate: name at least one attack and one checkpoint")
    out: list[Evaluation] = []
    busy: list[claims.Busy] = []
    with Session(engine, expire_on_commit=False) as s:
        run = find_run(s, run_name)
        if run is None:
            raise LookupError(f"no run named {run_name!r} in the database (see `bench ls runs`)")
        spec = None if is_external(run.spec) else RunSpec.from_dict(trained_spec(run.spec))
        tags = asked or checkpoint_tags(run)
        n_req = test_subset if test_subset is not None or spec is None else spec.test_subset
        specs = _eval_specs(  # built (and so checked) before any work
            names,
            tags,
            attack_options or {},
            eps=attack_eps(names, run, eps),
            test_subset=n_req,
            batch_size=batch_size,
            seed=seed,
            skip_wrong=skip_wrong,
        )
        x, y = bdata.subset(*bdata.load_split(run.dataset, False, data_root), n_req)
        ckpts = _checked_checkpoints(run, tags)
        base = EvalContext(
            session=s,
            run=run,
            ckpt=ckpts[tags[0]],
            spec=spec,
            evspec=specs[0],
            x=x,
            y=y,
            load_model=lambda: None,
            device=device,
            data_root=data_root,
            data_label=bdata.describe(run.dataset, data_root),
            dataset=run.dataset,
            progress=progress,
            provenance={**provenance.collect(device), "memory_format": "channels_last"},
            ensure_run=_trainer(engine, Path(run.run_dir).parent, device, data_root, progress),
        )
        loaders = {t: _loader(run, ckpts[t], device) for t in tags}
        for evspec in specs:
            t = evspec.checkpoint
            ctx = replace(base, ckpt=ckpts[t], evspec=evspec, load_model=loaders[t])
            try:
                out.append(_claimed(engine, ctx, wait))
            except claims.Busy as e:
                busy.append(e)
        run_name = run.name
    audit_runs(engine, [run_name], data_root=data_root, device=device)
    if busy:
        raise busy[0]
    return out


def attack_eps(names: list[str], run: Run, eps: float | None) -> dict[str, float]:
    """Each attack's budget: ``eps`` where given (one threat model per command); else the
    run's own where the attack is in the run's norm, and otherwise that norm's usual
    budget for the data set (bench/spec/run.py ``usual_eps``). The clean "attack" goes with
    the others' budget."""
    norms = {attacks.norm_of(a) for a in names if a != "clean"}
    if eps is not None:
        if len(norms) > 1:
            raise ValueError("one --eps for L-inf and L2 attacks: evaluate each in its own command")
        return dict.fromkeys(names, eps)
    clean_norm = next(iter(norms)) if len(norms) == 1 else run_norm(run.spec)

    def budget(a: str) -> float:
        return judged_eps(run.spec, run.dataset, clean_norm if a == "clean" else attacks.norm_of(a))

    return {a: budget(a) for a in names}


def _eval_specs(
    names: list[str],
    tags: list[str],
    opts: dict[str, dict[str, Any]],
    eps: dict[str, float],
    **common: Any,
) -> list[EvalSpec]:
    """One spec per (checkpoint, attack) at the attack's ``eps``: ``common`` is
    test_subset, batch_size, seed and skip_wrong."""
    return [
        EvalSpec(
            attack=a,
            eps=eps[a],
            options=tuple(sorted(opts.get(a, {}).items())),
            checkpoint=t,
            **common,
        )
        for t in tags
        for a in names
    ]


def _checked_checkpoints(run: Run, tags: list[str]) -> dict[str, Checkpoint]:
    """The run's checkpoints by tag; a missing tag, or a missing or changed file, is refused
    before any claim is taken."""
    ckpts = {c.tag: c for c in run.checkpoints}
    missing = [t for t in tags if t not in ckpts]
    if missing:
        raise LookupError(f"run {run.name} has no {missing[0]!r} checkpoint (is it trained?)")
    for t in tags:
        verified(Path(ckpts[t].path), ckpts[t].sha256, f"{t} checkpoint of run {run.name}")
    return ckpts


def checkpoint_tags(run: Run) -> list[str]:
    """What a run's evaluation covers by default: best and last, and best-val where the
    run has one (--val-subset); an external run's one checkpoint."""
    have = {c.tag for c in run.checkpoints}
    if is_external(run.spec):  # the one given checkpoint
        return [t for t in ALL_CHECKPOINTS if t in have]
    return [t for t in ALL_CHECKPOINTS if t in CHECKPOINTS or t in have]


def run_checkpoint_tags(engine: Engine, run_name: str) -> list[str]:
    """``checkpoint_tags`` of the run named ``run_name`` (as ``eval_job`` will cover them)."""
    with Session(engine) as s:
        run = find_run(s, run_name)
        return checkpoint_tags(run) if run is not None else list(CHECKPOINTS)


def _claimed(engine: Engine, ctx: EvalContext, wait: bool) -> Evaluation:
    """One evaluation under its claim: the spec on these weights and test points."""
    key = ctx.evspec.key(ctx.run.key, ctx.ckpt.sha256, ctx.n, {})
    name = ctx.desc(ctx.evspec.attack)

    def say(holder: claims.Holder, poll: float) -> None:
        print(
            f"{name} is being evaluated by {holder.describe()}: waiting for it (looking "
            f"every {poll:.1f} s)",
            file=sys.stderr,
        )

    with claims.hold(engine, claims.eval_key(key), claims.EVAL, wait=wait, on_wait=say):
        return evaluate(ctx)


def _trainer(
    engine: Engine, runs_dir: Path, device: str, data_root: str | None, progress: bool
) -> Callable[[RunSpec], Run]:
    """How a protocol gets an auxiliary run (a transfer surrogate): trained once, here."""

    def ensure(spec: RunSpec) -> Run:
        return train_job(
            engine, spec, runs_dir=runs_dir, device=device, data_root=data_root, progress=progress
        )[0]

    return ensure


def _loader(run: Run, ckpt: Checkpoint, device: str) -> Callable[[], nn.Module]:
    """Loads the checkpoint (hash checked) at most once per job, and only if needed, in
    channels_last memory (about 1.25x faster attacks here; recorded in the provenance)."""
    return functools.cache(
        lambda: checkpoint_model(run, ckpt).to(device, memory_format=torch.channels_last)
    )
