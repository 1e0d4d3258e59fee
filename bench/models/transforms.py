"""Input transformations applied at inference, the lecture's "fake robustness" defenses.

Each is an ``nn.Module`` on images in [0, 1] that runs before the network: bit-depth
reduction and feature squeezing (Xu et al., NDSS 2018), JPEG compression (Guo et al., ICLR
2018), a median filter, random resize-and-pad (Xie et al., ICLR 2018), and the thermometer
encoding a defense trains on (Buckman et al., ICLR 2018; not a ``--transform``: it changes
the number of channels the network takes). Most of them stop
gradients (rounding has a zero derivative; JPEG leaves the autograd graph) or draw fresh
randomness at every call, so PGD alone overrates them: ``attacks/adaptive.py`` (BPDA, EOT)
and the masking checks (``bench/eval/masking.py``) are their counterparts. Those that
quantise (bit depth, feature squeezing, the thermometer encoding) are ``Quantiser``s: they
know their levels, over which LS-PGA climbs (``attacks/lspga.py``).

``Transformed(net, transform)`` is the defended model. Its ``straight_through()`` view
runs the same forward pass and differentiates the transformation's stand-in instead
(``approx``: the identity unless a transformation gives a better one), which is how BPDA
reaches the network behind it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InputTransform(nn.Module):
    """A preprocessing step; ``random`` says whether two calls may differ."""

    random: ClassVar[bool] = False
    # Gradients go through it as it is (a resize, a pad): BPDA keeps it, stand-in unneeded.
    differentiable: ClassVar[bool] = False

    def approx(self, x: Tensor) -> Tensor:
        """A differentiable stand-in for BPDA: the identity by default."""
        return x

    def straight(self, x: Tensor) -> Tensor:
        """The forward value of the transformation with the stand-in's gradient; a
        differentiable transformation is its own stand-in (one call: one random draw)."""
        if self.differentiable:
            return self(x)
        a = self.approx(x)
        return a + (self(x) - a).detach()


NUDGE = 1e-6  # inside a level's edge, so that float rounding keeps the level


class Quantiser(InputTransform):
    """A transformation that shows the network one of ``options`` levels per pixel (bit
    depth, feature squeezing, a thermometer encoding). Inside an eps-ball a pixel can take
    the levels of x - eps .. x + eps and nothing else: what LS-PGA climbs over
    (attacks/lspga.py), with the network's exact gradient and no stand-in."""

    @property
    def options(self) -> int:
        raise NotImplementedError

    def level(self, x: Tensor) -> Tensor:
        """Each pixel's level, 0 .. options - 1, as the forward pass computes it."""
        raise NotImplementedError

    def level_range(self, level: Tensor) -> tuple[Tensor, Tensor]:
        """The lowest and highest pixel values that have ``level``."""
        raise NotImplementedError

    def relaxed(self, p: Tensor) -> Tensor:
        """What the network sees for level probabilities ``p`` ([N, C, H, W, options]):
        the expected output; a one-hot ``p`` gives the forward pass of that level."""
        raise NotImplementedError


class BitDepth(Quantiser):
    """Quantise each pixel to ``bits`` bits (Xu et al.: 1 bit on MNIST)."""

    def __init__(self, bits: int = 1) -> None:
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"bit-depth: bits must be 1..8, got {bits}")
        self.levels = 2**bits - 1

    def forward(self, x: Tensor) -> Tensor:
        return torch.round(x * self.levels) / self.levels

    @property
    def options(self) -> int:
        return self.levels + 1

    def level(self, x: Tensor) -> Tensor:
        return torch.round(x * self.levels).long()

    def level_range(self, level: Tensor) -> tuple[Tensor, Tensor]:
        mid = level.float() / self.levels
        half = 0.5 / self.levels - NUDGE  # round() halves to even: keep off the edge
        return (mid - half).clamp(0, 1), (mid + half).clamp(0, 1)

    def relaxed(self, p: Tensor) -> Tensor:
        values = torch.arange(self.options, device=p.device, dtype=p.dtype) / self.levels
        return (p * values).sum(-1)


class MedianFilter(InputTransform):
    """A ``size`` x ``size`` median over each channel (reflect padding)."""

    def __init__(self, size: int = 2) -> None:
        super().__init__()
        if size < 2:
            raise ValueError(f"median filter: size must be >= 2, got {size}")
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        k = self.size
        pad = (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2)
        patches = F.pad(x, pad, mode="reflect").unfold(2, k, 1).unfold(3, k, 1)
        return patches.reshape(*patches.shape[:4], -1).median(dim=-1).values


class FeatureSqueeze(Quantiser):
    """Feature squeezing as one transformation: bit depth, then a median filter (whose
    gradient, a selection, is exact: LS-PGA's relaxation goes through it)."""

    def __init__(self, bits: int = 1, size: int = 2) -> None:
        super().__init__()
        self.depth, self.median = BitDepth(bits), MedianFilter(size)

    def forward(self, x: Tensor) -> Tensor:
        return self.median(self.depth(x))

    @property
    def options(self) -> int:
        return self.depth.options

    def level(self, x: Tensor) -> Tensor:
        return self.depth.level(x)

    def level_range(self, level: Tensor) -> tuple[Tensor, Tensor]:
        return self.depth.level_range(level)

    def relaxed(self, p: Tensor) -> Tensor:
        return self.median(self.depth.relaxed(p))


class Jpeg(InputTransform):
    """JPEG at ``quality`` (Pillow, per image): the output leaves the autograd graph."""

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        if not 1 <= quality <= 95:
            raise ValueError(f"jpeg: quality must be 1..95, got {quality}")
        self.quality = quality

    def forward(self, x: Tensor) -> Tensor:
        from PIL import Image

        out = torch.empty_like(x)
        for i, img in enumerate((x.detach().clamp(0, 1) * 255).round().byte().cpu()):
            arr = img.permute(1, 2, 0).squeeze(-1).numpy()
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=self.quality)
            back = torch.from_numpy(np.array(Image.open(buf))).float() / 255
            out[i] = (back.unsqueeze(0) if back.ndim == 2 else back.permute(2, 0, 1)).to(x)
        return out


class RandomResizePad(InputTransform):
    """Xie et al.: resize to a random side in [s, s + ``pad``), pad at a random offset to
    s + ``pad``, then back to s (the network's input size). Random at every call."""

    random: ClassVar[bool] = True
    differentiable: ClassVar[bool] = True

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        if pad < 1:
            raise ValueError(f"resize-pad: pad must be >= 1, got {pad}")
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        s = x.shape[-1]
        side = int(torch.randint(s, s + self.pad, ()).item())
        small = F.interpolate(x, size=(side, side), mode="nearest")
        left, top = (int(torch.randint(0, s + self.pad - side + 1, ()).item()) for _ in "xy")
        right, bottom = s + self.pad - side - left, s + self.pad - side - top
        padded = F.pad(small, (left, right, top, bottom))
        return F.interpolate(padded, size=(s, s), mode="bilinear", align_corners=False)


class Thermometer(Quantiser):
    """Thermometer encoding (Buckman et al., ICLR 2018): each channel becomes ``levels``
    channels, bit k = 1 where x > k / levels (k = 0 .. levels - 1). A defense trains the
    network on it (``defenses/thermometer.py``): the network sees ``levels`` times the
    channels. The comparison has no gradient; BPDA's stand-in is the ramp
    ``clamp(levels * x - k, 0, 1)``, which rises from 0 at k / levels to 1 a level above."""

    def __init__(self, levels: int = 16) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"thermometer: levels must be >= 2, got {levels}")
        self.levels = levels

    @property
    def expands(self) -> int:
        """How many channels each input channel becomes."""
        return self.levels

    def _steps(self, x: Tensor) -> Tensor:
        return torch.arange(self.levels, device=x.device, dtype=x.dtype).view(1, 1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        bits = (x.detach().unsqueeze(2) * self.levels > self._steps(x)).to(x.dtype)
        return bits.flatten(1, 2)

    def approx(self, x: Tensor) -> Tensor:
        return (x.unsqueeze(2) * self.levels - self._steps(x)).clamp(0, 1).flatten(1, 2)

    @property
    def options(self) -> int:
        return self.levels + 1

    def level(self, x: Tensor) -> Tensor:
        """The code: how many of the thresholds k / levels the pixel exceeds."""
        steps = torch.arange(self.levels, device=x.device, dtype=x.dtype)
        return (x.unsqueeze(-1) * self.levels > steps).sum(-1)

    def level_range(self, level: Tensor) -> tuple[Tensor, Tensor]:
        top = level.float() / self.levels  # code c: (c - 1) / levels < x <= c / levels
        some = level > 0
        return torch.where(some, top - 1 / self.levels + NUDGE, 0.0), top - NUDGE * some

    def relaxed(self, p: Tensor) -> Tensor:
        """Bit k = P(code > k), laid out as the encoding lays out its channels."""
        above = p.flip(-1).cumsum(-1).flip(-1)[..., 1:]  # P(code >= k + 1), k = 0 .. l - 1
        return above.permute(0, 1, 4, 2, 3).flatten(1, 2)


def check_draws(draws: object, transform: InputTransform) -> int:
    """How many draws a prediction is taken over: a whole number >= 1, above 1 only for a
    random transformation."""
    whole = isinstance(draws, int) and not isinstance(draws, bool)
    if not whole or draws < 1 or (draws > 1 and not transform.random):  # type: ignore[operator]
        raise ValueError(
            f"draws: {draws!r} (a whole number >= 1; above 1 only for a random transformation)"
        )
    return draws  # type: ignore[return-value]


class Transformed(nn.Module):
    """``net`` behind ``transform``: the model a defended evaluation attacks.

    With ``draws`` > 1 (a random transformation only), its prediction is taken over the
    randomness: the log of the mean softmax over ``draws`` fresh draws, whose argmax is the
    class most probable on average (the expected prediction EOT attacks, Athalye et al.).
    """

    def __init__(self, net: nn.Module, transform: InputTransform, draws: int = 1) -> None:
        super().__init__()
        self.net, self.transform, self.draws = net, transform, check_draws(draws, transform)

    def forward(self, x: Tensor) -> Tensor:
        return expected(lambda: self.net(self.transform(x)), self.draws)

    def straight_through(self) -> nn.Module:
        """The same forward pass, differentiated through the transformation's stand-in."""
        return _StraightThrough(self)


class _StraightThrough(nn.Module):
    def __init__(self, model: Transformed) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        net = self.model.net  # itself behind an encoding (a transformed thermometer run)?
        inner = net.straight_through() if isinstance(net, Transformed) else net
        return expected(lambda: inner(self.model.transform.straight(x)), self.model.draws)


def expected(logits: Callable[[], Tensor], draws: int) -> Tensor:
    """``logits()`` itself for one draw; else the log of the mean softmax over ``draws``."""
    if draws == 1:
        return logits()
    probs = torch.stack([F.softmax(logits().float(), dim=1) for _ in range(draws)]).mean(0)
    return probs.clamp_min(1e-30).log()
