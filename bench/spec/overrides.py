"""The training settings a command may set over a preset, declared once as options.

``bench run`` takes each field as a flag (``bench/cli/groups.py``); ``resolve`` applies
what was given over the defense's defaults and the preset (bench/spec/run.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from bench.core.flags import check_lows, option


@dataclass(frozen=True)
class TrainOverrides:
    """Unset (None) fields keep the preset's value."""

    epochs: int | None = option(None, "--epochs", "epochs to train", low=1)
    batch_size: int | None = option(None, "--batch-size", "training batch size", low=1)
    lr: float | None = option(None, "--lr", "learning rate", low=0)
    momentum: float | None = option(None, "--momentum", "SGD momentum", low=0)
    weight_decay: float | None = option(None, "--weight-decay", "SGD weight decay", low=0)
    milestones: str | None = option(None, "--milestones", "epochs where lr drops, e.g. 75,90")
    eps: float | None = option(
        None, "--eps", "budget in the run's norm (training and eval) [default: the preset's]", low=0
    )
    norm: str | None = option(
        None,
        "--norm",
        "threat model: linf (default) or l2 (PGD-L2 inner attack, L2 monitor and attacks; "
        "eps default MNIST 2.0, CIFAR-10 0.5)",
    )
    steps: int | None = option(None, "--train-steps", "inner PGD steps", low=0)
    step_size: float | None = option(None, "--train-step-size", "inner PGD step size", low=0)
    start: str | None = option(None, "--start", "inner PGD start: uniform|normal|none")

    def __post_init__(self) -> None:
        check_lows(self)

    def as_dict(self) -> dict[str, Any]:
        """The settings given, as ``resolve(overrides=...)`` takes them."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["milestones"] = parse_milestones(self.milestones)
        return {k: v for k, v in out.items() if v is not None}


def parse_milestones(text: str | None) -> tuple[int, ...] | None:
    """``--milestones 20,40`` -> ``(20, 40)``; None when not given."""
    if text is None:
        return None
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise ValueError(f"--milestones expects epochs like 75,90, got {text!r}") from None
