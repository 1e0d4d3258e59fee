"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, S&P 2016).

Two runs of the same architecture on the same data and schedule:
- the teacher (``distill-teacher``) learns the labels with its softmax at temperature T:
  ``CE(softmax(z / T), y)``;
- the student (``distillation``) learns the teacher's soft labels at the same T:
  ``-sum_k softmax(z_t / T)_k * log softmax(z_s / T)_k``, averaged over the batch (the
  paper's plain cross-entropy on soft labels, no T^2 factor).

Both losses are multiplied by T unless ``scale_by_t`` is false. At temperature T every
gradient is T times smaller than at T = 1, so a schedule tuned for T = 1 (the harness's
presets) barely moves the weights: in 3 epochs on 2,000 MNIST images (preset demo-mnist)
neither T = 100 nor T = 20 left chance. Under SGD, a loss times T is the paper's loss with
the learning rate times T; ``scale_by_t=false`` gives the paper's loss as it is, for a
schedule of its own.

The student is deployed at T = 1: it is evaluated on its raw logits ``z_s``, which the
training at T has made about T times larger, so its softmax saturates and the
cross-entropy's input gradient underflows to zero. PGD on CE then stalls and reports high
robustness; an attack on the logits (CW-inf's margin, Carlini & Wagner 2016) does not.

The teacher is an auxiliary run (bench/spec/auxiliary.py ``teacher_spec``): the jobs layer
trains it first, copies its ``last`` checkpoint into the student's run folder and records
it in the student's provenance; the training loop hands those weights to
``attach_teacher``. T = 100 as in most of the paper's experiments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bench.core.constants import NORMS
from bench.core.lazy import F, torch
from defenses.base import Defense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


def soft_label_loss(logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Cross-entropy of the student's softmax at T against the teacher's, batch mean."""
    target = F.softmax(teacher_logits.float() / temperature, dim=1)
    return -(target * F.log_softmax(logits.float() / temperature, dim=1)).sum(1).mean()


@register
@dataclass
class DistillTeacher(Defense):
    temperature: float = 100.0
    scale_by_t: bool = True  # the loss times T (the schedule's lr times T under SGD)
    name: ClassVar[str] = "distill-teacher"
    norms: ClassVar[tuple[str, ...]] = NORMS
    display_name: ClassVar[str] = "Distillation teacher"
    summary: ClassVar[str] = "CE of softmax(z / T): the teacher of defensive distillation"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0:
            raise ValueError(f"{self.name}: temperature must be > 0, got {self.temperature}")

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        return self._scale * F.cross_entropy(model(x).float() / self.temperature, y)

    @property
    def _scale(self) -> float:
        return self.temperature if self.scale_by_t else 1.0


@register
@dataclass
class Distillation(DistillTeacher):
    name: ClassVar[str] = "distillation"
    display_name: ClassVar[str] = "Distillation"
    summary: ClassVar[str] = "soft labels of a teacher at T, deployed at T = 1 (Papernot 2016)"
    teacher: ClassVar[str | None] = "distill-teacher"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._teacher: nn.Module | None = None  # the teacher's network, attached to train

    def teacher_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "scale_by_t": self.scale_by_t}

    def attach_teacher(self, model: nn.Module) -> None:
        self._teacher = model.eval()

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        if self._teacher is None:
            raise RuntimeError("distillation: no teacher attached (train it through the jobs)")
        with torch.no_grad():
            z_t = self._teacher(x)
        return self._scale * soft_label_loss(model(x), z_t, self.temperature)
