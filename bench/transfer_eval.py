"""Black-box transfer evaluation (MART paper Table 3): craft on a surrogate run, test the defense.

The surrogate is itself a run of this harness, trained on demand with ``jobs.train_job``
(so it is trained once, resumes if interrupted, and is listed with the other runs):
natural training of ResNet-50 for the CIFAR-10 data sets, of the defense's own
architecture otherwise (MNIST), with the target run's data set, training subset, seed and
schedule. Options (``eval_job(attack_options=...)``) override it: ``surrogate_model``,
``surrogate_overrides`` (training settings, e.g. ``{"epochs": 1}``), ``surrogate_checkpoint``
(default ``last``: "best" is picked on PGD-20 accuracy, meaningless for a natural model).

The evaluation's parameters name the surrogate's run and checkpoint hash, so a retrained
surrogate gives a new row instead of silently reusing the old one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

import attacks
from attacks.transfer import Transfer
from bench.checkpoints import load_weights, sha256
from bench.db import Checkpoint, Evaluation, Run
from bench.evalctx import EvalContext
from bench.evaluate import robust_points
from bench.specs import RunSpec, resolve

CIFAR_SURROGATE = "resnet50"


def default_surrogate_model(spec: RunSpec) -> str:
    return CIFAR_SURROGATE if spec.dataset.startswith("cifar10") else spec.model


def surrogate_spec(spec: RunSpec, options: dict[str, Any] | None = None) -> RunSpec:
    """Natural training of the surrogate architecture with the target run's data and schedule."""
    options = options or {}
    schedule = {
        k: getattr(spec, k)
        for k in (
            "epochs",
            "batch_size",
            "lr",
            "momentum",
            "weight_decay",
            "milestones",
            "lr_gamma",
            "eps",
        )
    }
    schedule.update(options.get("surrogate_overrides", {}))
    return resolve(
        "natural",
        options.get("surrogate_model") or default_surrogate_model(spec),
        spec.dataset,
        spec.preset,
        seed=spec.seed,
        train_subset=spec.train_subset,
        test_subset=spec.test_subset,
        overrides=schedule,
    )


def ensure_surrogate(ctx: EvalContext) -> tuple[Run, Checkpoint]:
    """Train the surrogate unless the database has it; return its run and checkpoint."""
    from bench.jobs import train_job  # jobs imports the evaluation hook

    sur = surrogate_spec(ctx.spec, ctx.options)
    if sur.key == ctx.spec.key:
        raise ValueError("the surrogate spec is the target run itself; a transfer needs another")
    engine = ctx.session.get_bind()
    train_job(
        engine,
        sur,
        runs_dir=Path(ctx.run.run_dir).parent,
        device=ctx.device,
        data_root=ctx.data_root,
        progress=ctx.progress,
    )
    tag = ctx.options.get("surrogate_checkpoint", "last")
    run = ctx.session.scalars(select(Run).where(Run.key == sur.key)).one()
    ctx.session.refresh(run)  # the rows train_job wrote in its own sessions
    ckpt = next((c for c in run.checkpoints if c.tag == tag), None)
    if ckpt is None:
        raise LookupError(f"surrogate run {run.name} has no {tag!r} checkpoint")
    return run, ckpt


def evaluate_transfer(ctx: EvalContext, name: str) -> Evaluation:
    base = attacks.PRESETS.get(name).params["base"]
    sur_run, sur_ckpt = ensure_surrogate(ctx)
    atk = attacks.build(name, eps=ctx.eps)
    assert isinstance(atk, Transfer)
    atk.surrogate_run, atk.surrogate_sha256 = sur_run.name, sur_ckpt.sha256
    params = {**atk.params(), "batch_size": ctx.batch_size}
    done = ctx.find(name, params)
    if done is not None:
        return done
    if sha256(Path(sur_ckpt.path)) != sur_ckpt.sha256:
        raise RuntimeError(f"surrogate checkpoint {sur_ckpt.path} changed since it was recorded")
    sur_spec = RunSpec.from_dict(sur_run.spec)
    from bench.train import build_for_spec

    surrogate = load_weights(build_for_spec(sur_spec), Path(sur_ckpt.path)).to(ctx.device)
    atk.with_surrogate(surrogate, sur_run.name, sur_ckpt.sha256)
    res = robust_points(
        ctx.load_model(),
        ctx.x,
        ctx.y,
        atk,
        batch_size=ctx.batch_size,
        device=ctx.device,
        seed=ctx.seed,
        desc=f"{ctx.run.defense}/{ctx.ckpt.tag}/{name}",
        progress=ctx.progress,
    )
    extra = {
        "surrogate_checkpoint": sur_ckpt.tag,
        "surrogate_epoch": sur_ckpt.epoch,
        "surrogate_model": sur_spec.model,
        "surrogate_spec": sur_spec.to_dict(),
        "white_box_preset": base,
    }
    return ctx.store(name, params, res.robust, res.seconds, extra)
