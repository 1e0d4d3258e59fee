"""RayS (Chen & Gu, KDD 2020): a hard-label L-inf attack that only ever sees predicted labels.

It searches over sign directions d in {-1, +1}^D for the smallest radius r at which the
label of ``clamp(x + r d)`` changes. It starts from d = +1 everywhere and flips blocks of d
hierarchically: all of d, then its halves, its quarters, and so on. A flip is kept when the
label already changes at the best radius so far. The new, smaller radius is then found by
bisection. A point is broken when its best radius is at most eps; it is returned at
``clamp(x + min(r, eps) d)``, inside the ball and [0, 1].

Labels are all it uses: every query is ``model(x).argmax(1)``, under ``no_grad``. That
makes it the checklist's decision-based attack. A defense that hides gradients, or only
its scores, does not hide its decisions. Each point's search is budgeted in label queries
(``queries``). The points of a batch move through the same block schedule together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from attacks.base import Attack, AttackPreset, add_preset, register
from bench.core.lazy import no_grad, torch

if TYPE_CHECKING:
    from torch import Tensor, nn


@register
@dataclasses.dataclass
class RayS(Attack):
    """Hard-label L-inf attack by ray search over sign directions (Chen & Gu 2020)."""

    queries: int = 1000  # label queries per point, the initial search included
    search_steps: int = 10  # bisection steps for a radius
    name: ClassVar[str] = "rays"

    def __post_init__(self) -> None:
        if self.queries < 1 or self.search_steps < 1:
            raise ValueError("RayS needs queries >= 1 and search_steps >= 1")

    @no_grad
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        def wrong(r: Tensor, d: Tensor, idx: Tensor) -> Tensor:
            pts = (x[idx] + r.view(-1, *[1] * (x.dim() - 1)) * d).clamp(0.0, 1.0)
            return model(pts).argmax(1) != y[idx]

        n, dim = len(y), x[0].numel()
        d = torch.ones_like(x)
        best = torch.full((n,), math.inf, device=x.device)
        used = torch.zeros(n, dtype=torch.long, device=x.device)
        every = torch.arange(n, device=x.device)
        flips = wrong(torch.ones(n, device=x.device), d, every)  # is radius 1 enough at all?
        used += 1
        if flips.any():
            ones = torch.ones(int(flips.sum()), device=x.device)
            best[flips] = self._bisect(wrong, d[flips], every[flips], ones)
            used[flips] += self.search_steps
        stage = 0
        while True:
            size = math.ceil(dim / 2**stage)
            for start in range(0, dim, size):
                live = (used < self.queries) & (best > self.eps)
                if not live.any():
                    return self._result(x, d, best)
                idx = every[live]
                cand = d[idx].flatten(1).clone()
                cand[:, start : start + size] *= -1
                cand = cand.view_as(d[idx])
                r = best[idx].clamp(max=1.0)
                better = wrong(r, cand, idx)
                used[idx] += 1
                if better.any():
                    sel = idx[better]
                    d[sel] = cand[better]
                    best[sel] = self._bisect(wrong, cand[better], sel, r[better])
                    used[sel] += self.search_steps
            stage = stage + 1 if size > 1 else stage

    def _bisect(
        self, wrong: Callable[[Tensor, Tensor, Tensor], Tensor], d: Tensor, idx: Tensor, hi: Tensor
    ) -> Tensor:
        """The smallest radius in (0, hi] at which the label changes along ``d``, to within
        hi / 2^search_steps (the label changes at ``hi``)."""
        lo = torch.zeros_like(hi)
        for _ in range(self.search_steps):
            mid = (lo + hi) / 2
            flipped = wrong(mid, d, idx)
            hi = torch.where(flipped, mid, hi)
            lo = torch.where(flipped, lo, mid)
        return hi

    def _result(self, x: Tensor, d: Tensor, best: Tensor) -> Tensor:
        r = best.clamp(max=self.eps).nan_to_num(posinf=self.eps)
        return (x + r.view(-1, *[1] * (x.dim() - 1)) * d).clamp(0.0, 1.0)


add_preset(
    "rays",
    AttackPreset(
        "rays",
        {"queries": 1000},
        label="RayS (hard-label)",
        source="Chen & Gu, KDD 2020: labels only, 1,000 queries a point (the harness's budget)",
        kind="decision-based",
    ),
)
