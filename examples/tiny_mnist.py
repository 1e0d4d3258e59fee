"""A model defined outside bench, for ``bench eval --model-def`` (README: "Evaluate your
own model").

``TinyNet`` is trained on MNIST images normalised the usual torchvision way (mean 0.1307,
std 0.3081) and declares that normalisation (``input_mean``/``input_std``), so bench puts
it in front of the network: attacks still work on [0, 1] pixels. Train it and save a plain
``state_dict``::

    python examples/tiny_mnist.py /tmp/tiny.pt --steps 300

then evaluate it (from the repository root, so that ``examples`` is importable)::

    bench eval --model-def examples.tiny_mnist:TinyNet --model-args width=16 \\
        --checkpoint /tmp/tiny.pt --dataset mnist --attacks clean,fgsm,pgd20 --test-subset 500
"""

from __future__ import annotations

import argparse

import torch
from torch import nn


class TinyNet(nn.Module):
    """Two convolutions and a linear layer; takes normalised 1x28x28 images."""

    input_mean = (0.1307,)
    input_std = (0.3081,)

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(2 * width * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def train(out: str, steps: int, width: int, seed: int = 0) -> None:
    """Natural training with SGD on MNIST (bench's loader: BENCH_DATA_ROOT), then
    ``torch.save(model.state_dict(), out)``."""
    from bench import data

    torch.manual_seed(seed)
    x, y = data.load_split("mnist", True, None)
    model, mean, std = TinyNet(width), TinyNet.input_mean[0], TinyNet.input_std[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(steps):
        idx = torch.randint(0, len(y), (128,))
        xb = x[idx].float() / 255  # uint8 images -> [0, 1]
        loss = nn.functional.cross_entropy(model((xb - mean) / std), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}")
    torch.save(model.state_dict(), out)
    print(f"saved {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="where to save the state_dict (.pt)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=16)
    args = ap.parse_args()
    train(args.out, args.steps, args.width)
