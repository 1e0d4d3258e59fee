"""What a defense is: how it makes training adversarial examples, and its outer objective.

A defense never touches the optimizer, the device or the data pipeline; the one
training loop in ``bench.train`` calls ``perturb`` (model handed over in train mode;
the attack base switches to eval mode and back) and then ``loss`` (model in train mode).
Each defense keeps its objective as a pure function of logits, tested on its own.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

from attacks.pgd import PGD


@dataclass(frozen=True)
class StepContext:
    """Where training is: some defenses (MMA, Dynamic) need the epoch or example indices."""

    epoch: int  # 0-based
    epochs: int
    indices: Tensor | None = None
    # Semi-supervised runs: True where the example's label is a pseudo-label (bench/semi.py).
    unlabelled: Tensor | None = None


@dataclass
class Defense(ABC):
    name: ClassVar[str] = "defense"
    summary: ClassVar[str] = ""

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        """Training adversarial examples for the batch, or None for no inner attack."""
        return None

    @abstractmethod
    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        """The scalar training objective for one batch (the model is in train mode)."""

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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

    eps: float = 0.031
    steps: int = 10
    step_size: float = 0.007
    start: str = "normal"
    start_sigma: float = 0.001
    inner_loss: ClassVar[str] = "ce"

    def inner_attack(self) -> PGD:
        return PGD(
            eps=self.eps,
            steps=self.steps,
            step_size=self.step_size,
            start=self.start,
            start_sigma=self.start_sigma,
            loss=self.inner_loss,
        )

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        return self.inner_attack()(model, x, y)
