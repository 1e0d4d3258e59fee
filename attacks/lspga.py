"""LS-PGA, logit-space projected gradient ascent (Buckman, Roy, Raffel & Goodfellow, ICLR
2018): the attack the thermometer-encoding paper built for its own defense, and trains with;
here on any transformation that quantises the input.

A quantiser (bench/models/transforms.py ``Quantiser``) shows the network one of a few
levels per pixel: a thermometer encoding's code c(x) = #{k in 0..l-1 : l x > k}, shown as c
ones then l - c zeros; bit-depth reduction's rounded value; feature squeezing's, then
median-filtered. Inside the L-inf ball a pixel can take the levels of x - eps .. x + eps
(x clipped to [0, 1]), and nothing else. LS-PGA keeps, per pixel, logits u over the
levels, masked to the reachable ones, and shows the network the relaxed input: the
quantiser's output in expectation under softmax(u / T) (for the encoding, bit k =
P(code > k)). It climbs the loss by signed steps on u, sharpening the softmax as it goes
(T divided by ``annealing`` each step), and ends on the most probable level per pixel,
turned back into the reachable pixel value nearest x that has exactly that level. Each
restart starts from fresh N(0, 1) logits; a point keeps the first restart that fools the
model. The network's gradient is exact: no stand-in for the rounding or the comparison,
unlike BPDA's identity or ramp (attacks/adaptive.py).

It needs a model behind a quantiser (a ``thermometer`` or ``thermometer-at`` run, or a run
evaluated with ``--transform bit-depth`` or ``feature-squeeze``); another model is a
one-line error. Settings (preset ``ls-pga``): 20 steps, like PGD-20; step 1 on the logits
and annealing 1.2 from T = 1, as in the published re-implementation of Zimmermann et al.
(NeurIPS 2022, "Increasing confidence in adversarial robustness evaluations"); 5 restarts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from attacks.base import Attack, AttackPreset, add_preset, project, register
from bench.core.lazy import F, LazyModule, torch

if TYPE_CHECKING:
    from torch import Tensor, nn

    from bench.models.transforms import Quantiser

transforms = LazyModule("bench.models.transforms")  # PyTorch: loaded with the first attack


def quantised(model: nn.Module) -> bool:
    """Whether ``model`` is a network behind a quantiser: a thermometer encoding, bit depth,
    feature squeezing (what LS-PGA attacks; the checklist's probe asks the same,
    bench/eval/masking.py)."""
    return isinstance(getattr(model, "transform", None), transforms.Quantiser)


def quantiser_of(model: nn.Module) -> tuple[Quantiser, nn.Module]:
    """``(quantiser, network)`` of a model behind a quantiser; else ValueError."""
    if not quantised(model):
        raise ValueError(
            "ls-pga attacks a model behind a quantiser only (a thermometer encoding, "
            "--transform bit-depth or feature-squeeze)"
        )
    return model.transform, model.net


def pixels(level: Tensor, x: Tensor, eps: float, front: Quantiser) -> Tensor:
    """The pixel value with level ``level`` nearest ``x`` (reachable: the mask allowed it):
    x itself at its own level."""
    low, high = front.level_range(level)
    moved = torch.minimum(torch.maximum(x, low.to(x.dtype)), high.to(x.dtype))
    return project(torch.where(level == front.level(x), x, moved), x, eps)


@register
@dataclasses.dataclass
class LSPGA(Attack):
    """Logit-space PGA on a model behind a quantiser (Buckman et al. 2018)."""

    steps: int = 20
    step_size: float = 1.0  # on the logits
    temperature: float = 1.0  # initial
    annealing: float = 1.2  # T divided by this each step
    restarts: int = 5
    name: ClassVar[str] = "ls-pga"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1 or self.temperature <= 0 or self.annealing < 1:
            raise ValueError(
                "ls-pga needs steps >= 1, restarts >= 1, temperature > 0 and annealing >= 1"
            )

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        front, net = quantiser_of(model)
        lo = front.level((x - self.eps).clamp(0, 1))
        hi = front.level((x + self.eps).clamp(0, 1))
        options = torch.arange(front.options, device=x.device)
        allowed = (options >= lo.unsqueeze(-1)) & (options <= hi.unsqueeze(-1))
        best, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for r in range(self.restarts):
            level = self._climb(net, front, allowed, y)
            x_r = pixels(level, x, self.eps, front)
            with torch.no_grad():
                now = model(x_r).argmax(1) != y
            new = now & ~fooled
            best[new], fooled = x_r[new], fooled | now
            self.tick(r + 1, self.restarts, int((~fooled).sum()))
            if bool(fooled.all()):
                break
        return best

    def _climb(self, net: nn.Module, front: Quantiser, allowed: Tensor, y: Tensor) -> Tensor:
        """One restart: the most probable level per pixel after ``steps`` signed steps."""
        u = torch.randn(allowed.shape, device=allowed.device)
        temperature = self.temperature
        for _ in range(self.steps):
            u = u.masked_fill(~allowed, -1e12).requires_grad_(True)
            p = F.softmax(u / temperature, dim=-1)
            loss = F.cross_entropy(net(front.relaxed(p)).float(), y)
            (grad,) = torch.autograd.grad(loss, [u])
            u = (u + self.step_size * grad.sign()).detach()
            temperature /= self.annealing
        return u.masked_fill(~allowed, -1e12).argmax(-1)


add_preset(
    "ls-pga",
    AttackPreset(
        "ls-pga",
        {"steps": 20, "restarts": 5},
        label="LS-PGA",
        source="Buckman et al., ICLR 2018 (thermometer encoding), Algorithm 3, on any "
        "quantiser's levels; step 1 and annealing 1.2 from T = 1 as in Zimmermann et al., "
        "NeurIPS 2022",
    ),
)
