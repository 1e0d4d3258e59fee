"""LS-PGA, logit-space projected gradient ascent (Buckman, Roy, Raffel & Goodfellow, ICLR
2018): the attack the thermometer-encoding paper built for its own defense, and trains with.

A thermometer encoding (bench/models/transforms.py ``Thermometer``, ``levels`` = l) maps a
pixel x to its code c(x) = #{k in 0..l-1 : l x > k}, shown to the network as c ones then
l - c zeros. Inside the L-inf ball a pixel can take the codes c(x - eps) .. c(x + eps) (x
clipped to [0, 1]), and nothing else. LS-PGA keeps, per pixel, logits u over the l + 1
codes, masked to the reachable ones, and shows the network the relaxed encoding: bit k is
P(code > k) under softmax(u / T). It climbs the loss by signed steps on u, sharpening the
softmax as it goes (T divided by ``annealing`` each step), and ends on the most probable
code per pixel, turned back into the reachable pixel value nearest x (which has exactly
that code). Each restart starts from fresh N(0, 1) logits; a point keeps the first restart
that fools the model. The network's gradient is exact: no stand-in for the comparison,
unlike BPDA's ramp (attacks/adaptive.py).

It needs a model behind a thermometer encoding (a ``thermometer`` or ``thermometer-at``
run); another model is a one-line error. Settings (preset ``ls-pga``): 20 steps, like
PGD-20; step 1 on the logits and annealing 1.2 from T = 1, as in the published
re-implementation of Zimmermann et al. (NeurIPS 2022, "Increasing confidence in
adversarial robustness evaluations"); 5 restarts.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from attacks.base import Attack, AttackPreset, add_preset, project, register
from bench.core.lazy import F, LazyModule, torch

if TYPE_CHECKING:
    from torch import Tensor, nn

NUDGE = 1e-6  # below a code's top value, so that float rounding keeps the code
transforms = LazyModule("bench.models.transforms")  # PyTorch: loaded with the first attack


def encoded(model: nn.Module) -> bool:
    """Whether ``model`` is a network behind a thermometer encoding (what LS-PGA attacks;
    the checklist's probe asks the same, bench/eval/masking.py)."""
    return isinstance(getattr(model, "transform", None), transforms.Thermometer)


def thermometer_of(model: nn.Module) -> tuple[int, nn.Module]:
    """``(levels, network)`` of a model behind a thermometer encoding; else ValueError."""
    if not encoded(model):
        raise ValueError("ls-pga attacks a model behind a thermometer encoding only")
    return model.transform.levels, model.net


def codes(x: Tensor, levels: int) -> Tensor:
    """Each pixel's code: how many of the thresholds k / levels it exceeds (as the encoding
    computes it: levels * x > k)."""
    steps = torch.arange(levels, device=x.device, dtype=x.dtype)
    return (x.unsqueeze(-1) * levels > steps).sum(-1)


def relaxed(u: Tensor, temperature: float) -> Tensor:
    """The relaxed encoding of logits ``u`` ([N, C, H, W, l + 1]): bit k = P(code > k),
    laid out as the encoding lays out its channels ([N, C * l, H, W])."""
    p = F.softmax(u / temperature, dim=-1)
    above = p.flip(-1).cumsum(-1).flip(-1)[..., 1:]  # P(code >= k + 1), k = 0 .. l - 1
    return above.permute(0, 1, 4, 2, 3).flatten(1, 2)


def pixels(code: Tensor, x: Tensor, eps: float, levels: int) -> Tensor:
    """The pixel value with code ``code`` nearest ``x`` (reachable: the mask allowed it)."""
    top = code.to(x.dtype) / levels - NUDGE * (code > 0)  # the largest value with the code
    own = codes(x, levels)
    out = torch.where(code > own, torch.minimum(x + eps, top), torch.where(code < own, top, x))
    return project(out, x, eps)


@register
@dataclasses.dataclass
class LSPGA(Attack):
    """Logit-space PGA on a thermometer-encoded model (Buckman et al. 2018)."""

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
        levels, net = thermometer_of(model)
        lo = codes((x - self.eps).clamp(0, 1), levels)
        hi = codes((x + self.eps).clamp(0, 1), levels)
        options = torch.arange(levels + 1, device=x.device)
        allowed = (options >= lo.unsqueeze(-1)) & (options <= hi.unsqueeze(-1))
        best, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for r in range(self.restarts):
            code = self._climb(net, allowed, y, levels)
            x_r = pixels(code, x, self.eps, levels)
            with torch.no_grad():
                now = model(x_r).argmax(1) != y
            new = now & ~fooled
            best[new], fooled = x_r[new], fooled | now
            self.tick(r + 1, self.restarts, int((~fooled).sum()))
            if bool(fooled.all()):
                break
        return best

    def _climb(self, net: nn.Module, allowed: Tensor, y: Tensor, levels: int) -> Tensor:
        """One restart: the most probable code per pixel after ``steps`` signed steps."""
        u = torch.randn(allowed.shape, device=allowed.device)
        temperature = self.temperature
        for _ in range(self.steps):
            u = u.masked_fill(~allowed, -1e12).requires_grad_(True)
            loss = F.cross_entropy(net(relaxed(u, temperature)).float(), y)
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
        source="Buckman et al., ICLR 2018 (thermometer encoding), Algorithm 3; step 1 and "
        "annealing 1.2 from T = 1 as in Zimmermann et al., NeurIPS 2022",
    ),
)
