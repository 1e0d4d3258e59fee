"""The baseline for benchmarks/speed.py: a training epoch written the way the official MART
and TRADES scripts write it (docs/reference.md §2.2, §2.3), in this project's own words.

- a ``DataLoader`` over a ``TensorDataset`` of float images, shuffled, batch 128;
- each batch copied to the device inside the loop;
- fp32, contiguous memory, no autocast, no compile;
- the inner attack: model in eval mode, start ``x + 0.001 * N(0, 1)``, ``steps`` signed
  gradient steps of ``step`` on CE (MART) or on KL to the clean prediction (TRADES),
  projected onto the eps-ball and clipped to [0, 1]; then train mode and the loss.

It exists only to be timed against bench's own loop; it is not used for results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


def loader(x: Tensor, y: Tensor, batch_size: int = 128, seed: int = 0) -> DataLoader:
    """Float images in [0, 1] in a shuffled DataLoader, as the official scripts feed them."""
    data = TensorDataset(x.float() / 255 if x.dtype == torch.uint8 else x.float(), y)
    return DataLoader(
        data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )


def _attack(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, step: float, steps: int, kl: bool
) -> Tensor:
    model.eval()
    x_adv = x.detach() + 0.001 * torch.randn_like(x)
    if kl:
        with torch.no_grad():
            p_nat = F.softmax(model(x), dim=1)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            out = model(x_adv)
            if kl:
                loss = F.kl_div(F.log_softmax(out, dim=1), p_nat, reduction="sum")
            else:
                loss = F.cross_entropy(out, y)
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + step * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    model.train()
    return x_adv.detach()


def mart_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    logits, logits_adv = model(x), model(x_adv)
    p_adv = F.softmax(logits_adv, dim=1)
    top2 = torch.argsort(p_adv, dim=1)[:, -2:]
    other = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), other)
    p_nat = F.softmax(logits, dim=1)
    true = torch.gather(p_nat, 1, y.unsqueeze(1)).squeeze(1)
    kl = F.kl_div(torch.log(p_adv + 1e-12), p_nat, reduction="none").sum(1)
    return bce + beta * (kl * (1.0000001 - true)).sum() / len(y)


def trades_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    logits = model(x)
    kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="sum")
    return F.cross_entropy(logits, y) + beta * kl / len(y)


def epoch(
    model: nn.Module,
    data: DataLoader,
    opt: torch.optim.Optimizer,
    defense: str,
    *,
    eps: float,
    step: float,
    steps: int = 10,
    beta: float = 5.0,
    device: str = "cpu",
) -> None:
    """One official-style epoch of ``defense`` (mart or trades)."""
    model.train()
    for x, y in data:
        x, y = x.to(device), y.to(device)
        x_adv = _attack(model, x, y, eps, step, steps, kl=defense == "trades")
        opt.zero_grad()
        loss = (mart_loss if defense == "mart" else trades_loss)(model, x, x_adv, y, beta)
        loss.backward()
        opt.step()
