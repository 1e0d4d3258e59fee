"""Black-box transfer evaluation (MART paper Table 3): craft on a surrogate run, test the defense.

The surrogate is itself a run of this harness, trained on demand through the
``ensure_run`` callback that ``bench.jobs`` hands in (so it is trained once, resumes if
interrupted, and is listed with the other runs): natural training of ResNet-50 for the
CIFAR-10 data sets, of the defense's own architecture otherwise (MNIST), with the target
run's data set, training subset, seed and schedule (``bench.spec.auxiliary``). Options
(``--attack-param transfer-pgd20.surrogate_model=...``): ``surrogate_model``,
``surrogate_epochs``, ``surrogate_checkpoint`` (default ``last``: "best" is picked on PGD-20
accuracy, meaningless for a natural model).

The evaluation's parameters name the surrogate's run and checkpoint hash, so a retrained
surrogate gives a new row instead of silently reusing the old one.
"""

from __future__ import annotations

from typing import Any

import attacks
from attacks.transfer import Transfer
from bench.eval.context import EvalContext
from bench.eval.protocols import attack_and_store, attack_params
from bench.spec.auxiliary import natural_twin
from bench.spec.run import RunSpec
from bench.store.db import Checkpoint, Evaluation, Run
from bench.store.loading import checkpoint_model

CIFAR_SURROGATE = "resnet50"


def default_surrogate_model(spec: RunSpec) -> str:
    return CIFAR_SURROGATE if spec.dataset.startswith("cifar10") else spec.model


def surrogate_spec(spec: RunSpec, options: dict[str, Any] | None = None) -> RunSpec:
    """Natural training of the surrogate architecture with the target run's data and schedule."""
    options = options or {}
    over = {"epochs": options["surrogate_epochs"]} if "surrogate_epochs" in options else {}
    model = options.get("surrogate_model") or default_surrogate_model(spec)
    return natural_twin(spec, model=model, overrides=over)


def ensure_surrogate(ctx: EvalContext) -> tuple[Run, Checkpoint]:
    """Train the surrogate unless the database has it; return its run and checkpoint."""
    if ctx.spec is None or ctx.ensure_run is None:
        raise ValueError("transfer attacks need a surrogate run; not for external models")
    sur = surrogate_spec(ctx.spec, ctx.evspec.opts())
    if sur.key == ctx.spec.key:
        raise ValueError("the surrogate spec is the target run itself; a transfer needs another")
    run = ctx.ensure_run(sur)
    tag = ctx.evspec.opts().get("surrogate_checkpoint", "last")
    run = ctx.session.get(Run, run.id, populate_existing=True)  # rows written elsewhere
    assert run is not None
    ckpt = next((c for c in run.checkpoints if c.tag == tag), None)
    if ckpt is None:
        raise LookupError(f"surrogate run {run.name} has no {tag!r} checkpoint")
    return run, ckpt


def evaluate_transfer(ctx: EvalContext) -> Evaluation:
    name = ctx.evspec.attack
    base = attacks.PRESETS.get(name).params["base"]
    sur_run, sur_ckpt = ensure_surrogate(ctx)
    atk = attacks.build(name, eps=ctx.eps)
    assert isinstance(atk, Transfer)
    atk.surrogate_run, atk.surrogate_sha256 = sur_run.name, sur_ckpt.sha256
    params = attack_params(ctx, atk)
    done = ctx.find(name, params)
    if done is not None:
        return done
    surrogate = checkpoint_model(sur_run, sur_ckpt).to(ctx.device)
    atk.with_surrogate(surrogate, sur_run.name, sur_ckpt.sha256)
    extra = {
        "surrogate_checkpoint": sur_ckpt.tag,
        "surrogate_epoch": sur_ckpt.epoch,
        "surrogate_model": sur_run.model,
        "surrogate_spec": sur_run.spec,
        "white_box_preset": base,
    }
    return attack_and_store(ctx, atk, params, extra)
