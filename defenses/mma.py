"""MMA: max-margin adversarial training (Ding et al., ICLR 2020), as the official code does it.

Per batch (``BorealisAI/mma_training``, ``trainer.py`` and ``anpgd.py``):

1. One clean forward pass in train mode; the clean CE (mean) is 1/3 of the objective, and
   the soft logit margin ``SLM = logsumexp_{k != y} z_k - z_y`` of the same logits splits
   the batch: correct iff ``SLM < 0``.
2. For each correct example, AN-PGD at its remembered eps (at least ``min_eps``): PGD in
   eval mode on the summed SLM, step ``step_scale * eps / steps``, uniform start; then a
   bisection along the direction found, on ``[0, 1.05 * d_max]``, for ``search_steps``
   iterations, to the smallest eps that flips the prediction. That eps is remembered for
   the next epoch; misclassified examples remember 0.
3. One forward pass of the mixed batch (adversarial for correct, clean for misclassified)
   in train mode: CE per example, where a correct example whose margin eps* is already
   ``>= d_max`` contributes nothing (the hinge); summed and divided by B. This is 2/3 of
   the objective (the official code mixes the two gradients; mixing losses is the same).

Because the split uses the very logits of the clean loss term (train mode), the attack
runs inside ``loss`` rather than ``perturb``. Two details the MMA paper leaves open are
parameters, each defaulting to the official code (``anpgd.py``):

* ``search_mode``: the PGD part runs in eval mode; the margin at its end point and the
  bisection run in the caller's mode, train mode during training (``"train"``, official;
  with dropout, as SmallCNN has, those forward passes are stochastic), or ``"eval"``;
* ``clip_point``: the official code trains on ``x + eps* * direction`` unclipped (``False``),
  although the bisection evaluated the clipped point; ``True`` clips it to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attacks.base import input_grad
from bench.core.lazy import F, no_grad, torch
from defenses.base import Defense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn

SEARCH_RANGE = 1.05  # the bisection's upper end, as a multiple of d_max (official code)
SEARCH_MODES = ("train", "eval")


def soft_logit_margin(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example ``logsumexp_{k != y} z_k - z_y``: negative iff the example is correct
    with a soft margin, which is how MMA splits the batch and what AN-PGD maximises."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return torch.logsumexp(others, dim=1) - true


def mma_loss(
    logits_clean: Tensor,
    logits_mix: Tensor,
    y: Tensor,
    correct: Tensor,
    eps_star: Tensor,
    d_max: float,
    clean_coeff: float = 1 / 3,
) -> Tensor:
    """``(1 - c) * sum_i keep_i * CE(z_mix_i, y_i) / B + c * CE_mean(z_clean, y)``.

    ``keep_i`` is 1 for misclassified examples (their clean CE) and ``eps*_i < d_max`` for
    correct ones (their CE at the margin point): the hinge drops examples whose margin is
    already large enough.
    """
    ce_mix = F.cross_entropy(logits_mix, y, reduction="none")
    keep = torch.where(correct, eps_star < d_max, torch.ones_like(correct))
    mma = (ce_mix * keep.to(ce_mix.dtype)).sum() / y.shape[0]
    return (1 - clean_coeff) * mma + clean_coeff * F.cross_entropy(logits_clean, y)


def _ball(eps: Tensor, x: Tensor) -> Tensor:
    return eps.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


@no_grad
def bisect_eps(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    direction: Tensor,
    eps0: Tensor,
    margin0: Tensor,
    max_eps: float,
    steps: int,
) -> Tensor:
    """The official ``bisection_search``: the smallest eps in ``[0, max_eps]`` at which
    ``clip(x + eps * direction)`` is misclassified (SLM >= 0), to ``max_eps / 2**steps``.

    The bracket starts from what is known at ``eps0`` (``margin0`` is the SLM there): if the
    point already flips it is ``[0, eps0]``, else ``[eps0, max_eps]``. As in the official
    code the last midpoint is returned.
    """
    lo = torch.zeros_like(eps0)
    hi = torch.full_like(eps0, max_eps)
    eps, margin = eps0.clone(), margin0
    for _ in range(steps):
        robust = margin < 0
        lo = torch.where(robust, torch.maximum(eps, lo), lo)
        hi = torch.where(robust, hi, torch.minimum(eps, hi))
        eps = (lo + hi) / 2
        margin = soft_logit_margin(model((x + _ball(eps, x) * direction).clamp(0, 1)), y)
    return eps


def an_pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: Tensor,
    *,
    steps: int,
    step_scale: float,
    d_max: float,
    search_steps: int,
    search_mode: str = "train",
    clip_point: bool = False,
) -> tuple[Tensor, Tensor]:
    """Adaptive-norm PGD: ``(x at its margin, eps*)`` per example. PGD runs in eval mode, the
    margin and bisection in ``search_mode`` ("train": the mode the model came in)."""
    was_training = model.training
    model.eval()
    try:
        e = _ball(eps, x)
        alpha = step_scale * e / max(steps, 1)
        x_adv = (x + torch.empty_like(x).uniform_(-1, 1) * e).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                grad = input_grad(soft_logit_margin(model(x_adv), y).sum(), x_adv)
            x_adv = x_adv.detach() + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - e), x + e).clamp(0, 1)
        model.train(was_training and search_mode == "train")
        with torch.no_grad():
            margin0 = soft_logit_margin(model(x_adv), y)
        direction = (x_adv - x) / (e + 1e-12)
        eps_star = bisect_eps(
            model, x, y, direction, eps, margin0, SEARCH_RANGE * d_max, search_steps
        )
        x_margin = x + _ball(eps_star, x) * direction
        if clip_point:
            x_margin = x_margin.clamp(0, 1)
    finally:
        model.train(was_training)
    return x_margin.detach(), eps_star


@register
@dataclass
class MMA(Defense):
    """Defaults follow the official CIFAR-10 L-inf config; the MNIST preset sets the rest."""

    d_max: float = 12 / 255  # the hinge; the MART paper: 12/255 CIFAR-10, 0.45 MNIST
    min_eps: float = 0.005  # official: 0.005 CIFAR-10, 0.1 MNIST
    steps: int = 10  # AN-PGD iterations; official: 10 CIFAR-10, 40 MNIST
    step_scale: float = 2.5  # AN-PGD step = step_scale * eps / steps
    search_steps: int = 10
    clean_coeff: float = 1 / 3
    search_mode: str = "train"  # margin and bisection in train mode (official) or eval mode
    clip_point: bool = False  # official: the margin point is not clipped to [0, 1]
    name: ClassVar[str] = "mma"
    display_name: ClassVar[str] = "MMA"
    summary: ClassVar[str] = "2/3 CE at each example's margin eps* (AN-PGD, hinge d_max) + 1/3 CE"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.search_mode not in SEARCH_MODES:
            raise ValueError(f"unknown search_mode {self.search_mode!r}; valid: {SEARCH_MODES}")
        # eps* per training example index, grown on demand (not a hyperparameter); made at
        # the first batch, so building the defense (a spec reading its defaults) needs no torch.
        self._eps: Tensor | None = None

    def stored_eps(self, idx: Tensor) -> Tensor:
        """The remembered eps* of examples ``idx``; never-seen examples start at ``min_eps``."""
        need = int(idx.max()) + 1 if idx.numel() else 0
        if self._eps is None:
            self._eps = torch.zeros(0)
        if need > self._eps.numel():
            grown = torch.full((need,), self.min_eps, dtype=torch.float32)
            grown[: self._eps.numel()] = self._eps
            self._eps = grown
        return self._eps[idx.cpu()]

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        if ctx.indices is None:
            raise ValueError("MMA keeps eps* per training example: it needs ctx.indices")
        idx = ctx.indices.cpu()
        logits_clean = model(x)
        with torch.no_grad():
            correct = soft_logit_margin(logits_clean, y) < 0
        eps_star = torch.zeros(len(y), device=x.device)
        x_mix = x
        if correct.any():
            prev = self.stored_eps(idx)[correct.cpu()].clamp_min(self.min_eps).to(x.device)
            x_margin, found = an_pgd(
                model,
                x[correct],
                y[correct],
                prev,
                steps=self.steps,
                step_scale=self.step_scale,
                d_max=self.d_max,
                search_steps=self.search_steps,
                search_mode=self.search_mode,
                clip_point=self.clip_point,
            )
            x_mix = x.clone()
            x_mix[correct] = x_margin
            eps_star[correct] = found.to(eps_star.dtype)
        self.stored_eps(idx)  # make room, then remember (misclassified: 0)
        self._eps[idx] = eps_star.detach().float().cpu()
        logits_mix = model(x_mix)
        return mma_loss(
            logits_clean, logits_mix, y, correct, eps_star, self.d_max, self.clean_coeff
        )

    def state_dict(self) -> dict[str, Tensor]:
        return {"eps": torch.zeros(0) if self._eps is None else self._eps.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "eps" in state:
            self._eps = state["eps"].detach().float().cpu().clone()
