"""What a defense is: how it makes training adversarial examples, and its outer objective.

A defense never touches the optimizer, the device or the data pipeline; the one
training loop in ``bench.train`` calls ``perturb`` (model handed over in train mode;
the attack base switches to eval mode and back) and then ``loss`` (model in train mode).
Each defense keeps its objective as a pure function of logits, tested on its own.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from attacks.l2 import PGDL2
from attacks.pgd import PGD, STARTS
from bench.core.constants import EPS_CIFAR_CODE, L2, LINF, NORMS
from bench.core.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor, nn

D = TypeVar("D", bound="Defense")


@dataclass(frozen=True)
class StepContext:
    """Where training is: some defenses (MMA, Dynamic) need the epoch or example indices."""

    epoch: int  # 0-based
    epochs: int
    indices: Tensor | None = None
    # Semi-supervised runs: True where the label is a pseudo-label (bench/data/unlabelled.py).
    unlabelled: Tensor | None = None
    # In a process group (--nproc): averages per-rank tensors in place over the ranks, as DDP
    # averages gradients, so a step that computes its own gradient (AWP) agrees on every rank.
    average: Callable[[list[Tensor]], None] | None = None


@dataclass
class Defense(ABC):
    name: ClassVar[str] = "defense"
    summary: ClassVar[str] = ""
    display_name: ClassVar[str] = ""  # how tables name it, e.g. "TRADES"; default: name
    # Numeric parameters that may be negative (none by default: weights, budgets, steps).
    signed_params: ClassVar[tuple[str, ...]] = ()
    # The defense's own settings per training preset ("*": every preset), over the preset's
    # (its inner attack included: "step_fraction" is a step of that many eps), so a defense
    # that fixes them (fast AT: one step of 1.25 eps) needs no edit to the shared table.
    preset_params: ClassVar[dict[str, dict[str, Any]]] = {}
    # The threat models it can train in (bench run --norm): its inner attack's norms; a
    # defense that attacks nothing during training (natural, IGR) takes every norm.
    norms: ClassVar[tuple[str, ...]] = (LINF,)
    # A defense that learns from another run (distillation): the defense that trains it,
    # with ``teacher_params()``, on the run's data, model and schedule. The jobs train it
    # first (bench/spec/auxiliary.py ``teacher_spec``); the loop calls ``attach_teacher``.
    teacher: ClassVar[str | None] = None
    # Parameters a table names the model by, beside the defense (thermometer-at's inner
    # attack), and the value each had in runs made before it existed (their specs lack it).
    shown_params: ClassVar[tuple[str, ...]] = ()
    before_params: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        """Coerce and check every parameter once, where it enters: types, finiteness, sign."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _checked(self.name, f.name, hints[f.name], getattr(self, f.name)))
            value = getattr(self, f.name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if numeric and value < 0 and f.name not in self.signed_params:
                raise ValueError(f"{self.name}: {f.name} must be >= 0, got {value}")

    @classmethod
    def title(cls) -> str:
        return cls.display_name or cls.name

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        """Training adversarial examples for the batch, or None for no inner attack."""
        return None

    @abstractmethod
    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        """The scalar training objective for one batch (the model is in train mode)."""

    def around_update(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> AbstractContextManager[None]:
        """What the weight update (loss, backward, optimizer step) runs inside. Called after
        ``perturb`` with the model in train mode, under the step's precision. A defense that
        perturbs the weights for its loss (AWP) does it here and undoes it on exit, after the
        optimizer's step. Default: nothing."""
        return nullcontext()

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def encoding(self) -> nn.Module | None:
        """An input encoding the network is trained and evaluated behind (thermometer
        encoding), or None. ``build_for_spec`` puts it in front of a network that takes
        ``encoding.expands`` times the data set's channels, in training and in every
        evaluation, so the run's model is always the defended one."""
        return None

    def teacher_params(self) -> dict[str, Any]:
        """The teacher's settings, for a defense with a ``teacher``."""
        return {}

    def attach_teacher(self, model: nn.Module) -> None:
        """Receive the trained teacher's network (eval mode) before training starts."""
        del model

    def state_dict(self) -> dict[str, Tensor]:
        """Per-example state kept across epochs (MMA's eps*), saved with the resume state.

        Most defenses are stateless; one that is not must return everything it needs to
        continue exactly after a resume, as plain tensors (the state file loads with
        ``weights_only=True``).
        """
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what ``state_dict`` returned; a stateless defense ignores it."""
        del state


@dataclass
class PGDDefense(Defense):
    """A defense whose inner maximisation is PGD; defaults follow the official MART code.

    The official code starts at ``x + 0.001 * N(0, 1)`` with step 0.007 and eps 0.031;
    the paper's variant (uniform random start, step eps/4) comes from the presets.
    """

    eps: float = EPS_CIFAR_CODE
    steps: int = 10
    step_size: float = 0.007
    start: str = "normal"
    start_sigma: float = 0.001
    norm: str = LINF  # the threat model of the inner attack: linf, or l2 (PGD-L2)
    inner_loss: ClassVar[str] = "ce"
    norms: ClassVar[tuple[str, ...]] = NORMS  # a defense with its own L-inf loop: (LINF,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.start not in STARTS:
            raise ValueError(
                f"{self.name}: unknown start {self.start!r}; valid: {', '.join(STARTS)}"
            )
        if self.norm not in self.norms:
            raise ValueError(
                f"{self.name}: no {self.norm} training (its inner attack is "
                f"{'/'.join(self.norms)} only)"
            )
        if self.norm == LINF and self.eps > 1:
            raise ValueError(f"{self.name}: eps must be in [0, 1], got {self.eps}")

    def params(self) -> dict[str, Any]:
        """The settings; ``norm`` only where it is not L-inf, so that the specs (and keys)
        of every L-inf run stay what they were before L2 existed."""
        out = super().params()
        if out.get("norm") == LINF:
            del out["norm"]
        return out

    def inner_attack(self) -> PGD:
        cls = PGDL2 if self.norm == L2 else PGD
        return cls(
            eps=self.eps,
            steps=self.steps,
            step_size=self.step_size,
            start=self.start,
            start_sigma=self.start_sigma,
            loss=self.inner_loss,
        )

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        return self.inner_attack()(model, x, y)


DEFENSES: Registry[type[Defense]] = Registry("defense")


def register(cls: type[D]) -> type[D]:
    """Class decorator: a defense file registers itself (``DEFENSES.get(cls.name)``)."""
    DEFENSES.add(cls.name, cls)
    return cls


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _checked(defense: str, key: str, kind: Any, value: Any) -> Any:
    """``value`` checked against the field's type (an int where a float is declared is fine)."""
    where = f"{defense}: {key}"
    if kind is bool:
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in _TRUE + _FALSE:
            return value if isinstance(value, bool) else text in _TRUE
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value}")
        if kind is int and value != int(value):
            raise ValueError(f"{where} must be a whole number, got {value}")
        return value  # not coerced: the spec keeps what was given (its key depends on it)
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{where} must be text, got {value!r}")
    return value
