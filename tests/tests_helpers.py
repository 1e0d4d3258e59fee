"""Small builders shared by tests (not a package named `tests`: robustbench owns that)."""

from __future__ import annotations

import torch
from torch import nn


def binary_linear(dim: int, seed: int) -> tuple[nn.Module, torch.Tensor]:
    """A 2-class linear model and ``w_1 - w_0``, the direction that flips class 0 to 1."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(dim, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, dim, generator=g))
        model.bias.zero_()
    return model.eval(), (model.weight[1] - model.weight[0]).detach()
