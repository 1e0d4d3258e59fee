"""The attack base class: every chore that is easy to get wrong is done here once.

An attack subclass only writes ``perturb``. The base
- puts the model in eval mode for the attack and restores the caller's mode,
- never mutates the caller's tensors (it works on a detached copy),
- never leaves gradients on the model's parameters (subclasses use ``input_grad``),
- asserts that every output lies in the eps-ball around the input and in [0, 1].
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bench.core.constants import L2, LINF, Protocol
from bench.core.lazy import torch
from bench.core.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

# Float slack for the eps-ball check: 8/255 stored in float32 and re-projected.
BOUND_TOL = 1e-5
# Threat models: the norm an attack's eps is measured in (``Attack.norm``).
NORM_LABELS = {LINF: "L-inf", L2: "L2"}


class BoundViolation(AssertionError):
    """An attack produced a point outside the threat model: its numbers would be invalid."""


def check_bounds(
    x_adv: Tensor, x: Tensor, eps: float, tol: float = BOUND_TOL, norm: str = LINF
) -> None:
    """Every point of ``x_adv`` within ``eps`` of its ``x`` (L-inf or L2) and in [0, 1]."""
    if x_adv.shape != x.shape:
        raise BoundViolation(f"shape changed: {tuple(x.shape)} -> {tuple(x_adv.shape)}")
    if not torch.isfinite(x_adv).all():
        raise BoundViolation("non-finite values in adversarial examples")
    dist = distances(x_adv, x, norm).max().item() if x.numel() else 0.0
    if dist > eps + tol:
        raise BoundViolation(f"{NORM_LABELS[norm]} distance {dist:.6f} exceeds eps {eps:.6f}")
    lo, hi = x_adv.min().item(), x_adv.max().item()
    if lo < -tol or hi > 1 + tol:
        raise BoundViolation(f"values outside [0, 1]: min {lo:.6f}, max {hi:.6f}")


def distances(a: Tensor, b: Tensor, norm: str = LINF) -> Tensor:
    """Per-point distance between two batches, in ``norm`` (``linf`` or ``l2``)."""
    diff = (a - b).flatten(1)
    if norm == LINF:
        return diff.abs().amax(dim=1)
    if norm == L2:
        return diff.norm(dim=1)
    raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORM_LABELS)}")


def project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Project onto the L-inf ball of radius eps around x, intersected with [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def project_l2(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Project onto the L2 ball of radius eps around x (each point's perturbation scaled
    down where longer), then onto [0, 1]; clipping can only bring a point closer to x."""
    delta = x_adv - x
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (x + delta * per_point((eps / norms).clamp(max=1.0), x)).clamp_(0.0, 1.0)


def per_point(v: Tensor, like: Tensor) -> Tensor:
    """A value per point (shape [N]) shaped to scale a batch like ``like`` ([N, ...])."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def input_grad(loss: Tensor, x: Tensor) -> Tensor:
    """Gradient of ``loss`` with respect to ``x`` only (model parameters keep no .grad).

    Where no gradient reaches ``x`` (a model that leaves the autograd graph, such as JPEG
    in front of the network) it is zero: the attack cannot move, as it could not on the
    original defense, and the masking checks (bench/eval/masking.py) are what catch it."""
    if not loss.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(loss, [x], allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


@dataclasses.dataclass
class Attack(ABC):
    """An attack with budget ``eps`` in its ``norm`` (L-inf unless a class says L2);
    subclasses are dataclasses of their settings."""

    eps: float
    name: ClassVar[str] = "attack"
    norm: ClassVar[str] = LINF

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, keep: Tensor | None = None
    ) -> Tensor:
        """Adversarial examples for ``x``; with ``keep`` (bool per point), only the kept points
        are attacked and the others are returned unchanged (they are already decided)."""
        was_training = model.training
        model.eval()
        try:
            x, y = x.detach().clone(), y.detach()
            x_adv = (
                self.perturb(model, x, y) if keep is None else self.perturb_kept(model, x, y, keep)
            )
        finally:
            model.train(was_training)
        x_adv = x_adv.detach()
        check_bounds(x_adv, x.detach(), self.eps, norm=self.norm)
        return x_adv

    @abstractmethod
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``x`` (a private copy; the model is in eval mode)."""

    def perturb_kept(self, model: nn.Module, x: Tensor, y: Tensor, keep: Tensor) -> Tensor:
        """``perturb`` on the kept points only. An attack that draws random numbers for the
        whole batch overrides this so that a kept point gets the same draw either way."""
        out = x.clone()
        idx = keep.nonzero().squeeze(1)
        if idx.numel():
            out[idx] = self.perturb(model, x[idx], y[idx])
        return out

    def tick(self, step: int, total: int, robust: int) -> None:
        """Report progress inside a long attack: the caller may set ``on_step`` (not a
        setting, so not in ``params``) to a callable taking (step, total, still robust)."""
        hook = self.__dict__.get("on_step")
        if hook is not None:
            hook(step, total, robust)

    def params(self) -> dict[str, Any]:
        """Every setting, for the results database: a number is useless without them."""
        return {"attack": self.name, **dataclasses.asdict(self)}


# (model, x, y) -> x_adv; a string, because PyTorch is not imported at this point.
AttackFn = Callable[["nn.Module", "Tensor", "Tensor"], "Tensor"]


A = TypeVar("A", bound=type[Attack])
ATTACKS: Registry[type[Attack]] = Registry("attack")


def register(cls: A) -> A:
    """Class decorator: an attack file registers its class (``ATTACKS.get(cls.name)``)."""
    ATTACKS.add(cls.name, cls)
    return cls


@dataclass(frozen=True)
class AttackPreset:
    """A named evaluation protocol: the attack class, its settings, and where they come from."""

    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    step_fraction: float | None = None  # step size as a fraction of eps
    label: str = ""
    source: str = ""
    # white-box | score-based (queries outputs only) | decision-based (labels only) |
    # ensemble | transfer (needs a surrogate)
    kind: str = "white-box"
    # How bench evaluates it (bench/eval/protocols.py; bench/core/constants.py Protocol).
    protocol: Protocol = Protocol.SINGLE

    def resolve(self, eps: float, **overrides: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"eps": eps, **self.params}
        if self.step_fraction is not None:
            params["step_size"] = eps * self.step_fraction
        params.update(overrides)
        return params


PRESETS: Registry[AttackPreset] = Registry("attack preset")


def add_preset(name: str, preset: AttackPreset) -> None:
    """Register a named evaluation protocol (next to the attack class it uses)."""
    PRESETS.add(name, preset)


add_preset(
    "clean", AttackPreset("none", label="Natural", source="no attack", protocol=Protocol.CLEAN)
)


def is_transfer(name: str) -> bool:
    """Whether the attack preset ``name`` is crafted on a surrogate (its protocol says so):
    the one way a transfer attack is recognised."""
    return name in PRESETS and PRESETS.get(name).protocol == Protocol.TRANSFER


def norm_of(name: str) -> str:
    """The threat model of an attack preset (or class): ``linf`` or ``l2``; the clean
    "attack" is L-inf, the budget of the runs it sits beside."""
    preset = PRESETS.get(name) if name in PRESETS else None
    cls_name = preset.attack if preset is not None else name
    return ATTACKS.get(cls_name).norm if cls_name in ATTACKS else LINF


def build(name: str, **params: Any) -> Attack:
    """Build an attack by class or preset name; ``eps`` is required."""
    if "eps" not in params:
        raise TypeError("attacks.build needs eps=")
    if name in PRESETS:
        preset = PRESETS.get(name)
        if preset.attack == "none":
            raise ValueError("'clean' is not an attack; evaluate without one")
        params = preset.resolve(**params)
        return ATTACKS.get(preset.attack)(**params)
    if name not in ATTACKS:
        choices = sorted(set(ATTACKS.names()) | set(PRESETS.names()) - {"clean"})
        raise ValueError(f"unknown attack {name!r}; valid: {', '.join(choices)}")
    return ATTACKS.get(name)(**params)
