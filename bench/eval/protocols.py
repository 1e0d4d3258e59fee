"""Evaluation protocols: how an attack preset becomes per-point results on one checkpoint.

Each attack preset names its protocol (``AttackPreset.protocol``):

- ``clean``: predictions on the unperturbed points;
- ``single``: one attack loop over the test points (FGSM, PGD, CW, SPSA, ...);
- ``autoattack``: the standard AutoAttack parts chained over the points still robust
  (bench/eval/autoattack.py);
- ``transfer``: adversarial examples crafted on a surrogate run (bench/eval/transfer.py).

A protocol takes an ``EvalContext`` and returns the stored ``Evaluation``: the row already
in the database when these exact settings ran on these weights, else a new one. Those
defined here are registered with ``@protocol``; those in their own modules by reference
below, so that a module is imported when a preset first needs its protocol (and
``bench.eval`` itself loads without them: its masks and checks serve the tables).
"""

from __future__ import annotations

from collections.abc import Callable

import attacks
from bench.core.constants import Protocol
from bench.core.registry import Registry
from bench.eval.context import EvalContext
from bench.eval.loop import robust_points
from bench.store.db import Evaluation

Evaluator = Callable[[EvalContext], Evaluation]
PROTOCOLS: Registry[Evaluator] = Registry("evaluation protocol")


def protocol(name: Protocol) -> Callable[[Evaluator], Evaluator]:
    return PROTOCOLS.register(name)


PROTOCOLS.add_lazy(Protocol.AUTOATTACK, "bench.eval.autoattack:evaluate_autoattack")
PROTOCOLS.add_lazy(Protocol.TRANSFER, "bench.eval.transfer:evaluate_transfer")


def evaluate(ctx: EvalContext) -> Evaluation:
    """Run (or find) the evaluation ``ctx.evspec`` describes."""
    return PROTOCOLS.get(attacks.PRESETS.get(ctx.evspec.attack).protocol)(ctx)


@protocol(Protocol.CLEAN)
def evaluate_clean(ctx: EvalContext) -> Evaluation:
    params = {"preset": "clean", "eps": ctx.eps, "batch_size": ctx.evspec.batch_size}
    return _loop(ctx, None, params)


@protocol(Protocol.SINGLE)
def evaluate_single(ctx: EvalContext) -> Evaluation:
    name = ctx.evspec.attack
    atk = attacks.build(name, eps=ctx.eps, **ctx.evspec.opts())
    return _loop(ctx, atk, attack_params(ctx, atk))


def attack_params(ctx: EvalContext, atk: attacks.Attack) -> dict:
    """What a stored row says about the attack: its settings, the batch size, the skip."""
    params = {**atk.params(), "batch_size": ctx.evspec.batch_size}
    if ctx.evspec.skip_wrong:
        params["skip_wrong"] = True
    return params


def _loop(ctx: EvalContext, atk: attacks.Attack | None, params: dict) -> Evaluation:
    done = ctx.find(ctx.evspec.attack, params)
    return done if done is not None else attack_and_store(ctx, atk, params)


def attack_and_store(
    ctx: EvalContext, atk: attacks.Attack | None, params: dict, extra: dict | None = None
) -> Evaluation:
    """Attack every test point (or none: clean) and store the row of ``ctx.evspec.attack``."""
    name = ctx.evspec.attack
    res = robust_points(
        ctx.load_model(),
        ctx.x,
        ctx.y,
        atk,
        batch_size=ctx.evspec.batch_size,
        device=ctx.device,
        seed=ctx.evspec.seed,
        desc=ctx.desc(name),
        progress=ctx.progress,
        skip_wrong=ctx.evspec.skip_wrong,
    )
    return ctx.store(name, params, res.robust, res.seconds, extra)
