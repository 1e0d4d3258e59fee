"""Named training presets, each with its source (docs/reference.md §5), instead of loose numbers.

Every field can be overridden from the CLI; the resolved values are what the database
stores, so a number always says which preset (and which overrides) produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.core.constants import EPS_CIFAR, EPS_CIFAR_CODE, EPS_MNIST
from bench.core.registry import Registry

# Baselines of the MART paper §4.2 (d_max, c_max); MMA's min eps and AN-PGD iterations
# follow the official MMA config (BorealisAI/mma_training config.py) for each data set.
MMA_CIFAR: dict[str, Any] = {"d_max": 12 / 255, "min_eps": 0.005, "steps": 10}
MMA_MNIST: dict[str, Any] = {"d_max": 0.45, "min_eps": 0.1, "steps": 40}
DYNAMIC: dict[str, Any] = {"c_max": 0.5}
# Where the baselines' papers are silent the official code decides (docs/reference.md §2.5-2.6).
BASELINE_CHOICES = (
    "Dynamic: plain CE as its paper says (the official code's loss weighting is off), the "
    "official unclipped random start and FOSC origin; MMA: the official code's train-mode "
    "margin and bisection and unclipped margin point, with the MART paper's SGD schedule "
    "and SmallCNN (not the official MNIST recipe of Adam 1e-4, batch 50, LeNet5)"
)


@dataclass(frozen=True)
class TrainPreset:
    source: str
    epochs: int
    lr: float
    milestones: tuple[int, ...]
    weight_decay: float
    eps: float
    batch_size: int = 128
    momentum: float = 0.9
    lr_gamma: float = 0.1
    steps: int = 10
    step_fraction: float | None = 0.25  # inner step as a fraction of eps (the paper: eps/4)
    step_size: float | None = None  # an absolute inner step (the official code: 0.007)
    start: str = "uniform"
    # Per-defense hyperparameters, e.g. {"mart": {"lam": 5.0}}.
    defense_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: str = ""

    def attack_params(self, eps: float | None = None) -> dict[str, Any]:
        eps = self.eps if eps is None else eps
        step = self.step_size if self.step_size is not None else eps * (self.step_fraction or 0.25)
        return {"eps": eps, "steps": self.steps, "step_size": step, "start": self.start}


TRAIN_PRESETS: Registry[TrainPreset] = Registry("training preset")

TRAIN_PRESETS.add(
    "paper-4.1",
    TrainPreset(
        source="MART paper §4.1 (ResNet-18 ablations on CIFAR-10)",
        epochs=100,
        lr=0.1,
        milestones=(75, 90),
        weight_decay=2e-4,
        eps=EPS_CIFAR,
        defense_params={
            "mart": {"lam": 6.0},
            "trades": {"beta": 6.0},
            "mma": MMA_CIFAR,
            "dynamic": DYNAMIC,
        },
        notes="PGD-10, random start, step eps/4; lam 6",
    ),
)
TRAIN_PRESETS.add(
    "paper-4.2-cifar",
    TrainPreset(
        source="MART paper §4.2 (CIFAR-10 baselines, Table 2)",
        epochs=100,
        lr=0.01,
        milestones=(75, 90),
        weight_decay=3.5e-3,
        eps=EPS_CIFAR,
        defense_params={
            "mart": {"lam": 5.0},
            "trades": {"beta": 4.0},
            "mma": MMA_CIFAR,
            "dynamic": DYNAMIC,
        },
        notes="epochs and batch size not stated in the paper: 100 and 128 assumed. "
        + BASELINE_CHOICES,
    ),
)
TRAIN_PRESETS.add(
    "paper-4.2-mnist",
    TrainPreset(
        source="MART paper §4.2 (MNIST baselines, Table 2)",
        epochs=50,
        lr=0.01,
        milestones=(20, 40),
        weight_decay=0.0,
        eps=EPS_MNIST,
        defense_params={
            "mart": {"lam": 5.0},
            "trades": {"beta": 4.0},
            "mma": MMA_MNIST,
            "dynamic": DYNAMIC,
        },
        notes="epochs, batch size and weight decay not stated: 50, 128 and 0 assumed. "
        + BASELINE_CHOICES,
    ),
)
TRAIN_PRESETS.add(
    "mart-code-wrn",
    TrainPreset(
        source="official MART code, WRN-34-10 script",
        epochs=90,
        lr=0.1,
        milestones=(75, 90),
        weight_decay=7e-4,
        eps=EPS_CIFAR_CODE,
        step_fraction=None,
        step_size=0.007,
        start="normal",
        defense_params={
            "mart": {"lam": 6.0},
            "trades": {"beta": 6.0},
            "mma": MMA_CIFAR,
            "dynamic": DYNAMIC,
        },
        notes="eps 0.031 (not 8/255), step 0.007, start x + 0.001 N(0,1); best = epoch 76",
    ),
)

TRAIN_PRESETS.add(
    "demo-mnist",
    TrainPreset(
        source="bench's quick CPU demo (not a paper setting)",
        epochs=6,
        lr=0.05,
        milestones=(4,),  # lr x0.1 for the last two epochs: the seeds end closer together
        weight_decay=0.0,
        eps=0.1,
        batch_size=64,
        steps=5,  # PGD-5, step eps/4: 1.65x faster training than PGD-10 (the demo's budget)
        defense_params={
            "mart": {"lam": 5.0},
            # beta 2, not 4: with 4, one of seeds 0-2 converged slower (spread 4.4 points).
            "trades": {"beta": 2.0},
            # The MNIST MMA setting scaled to eps 0.1 (d_max 1.5 eps, min eps eps/3).
            "mma": {"d_max": 0.15, "min_eps": 0.1 / 3, "steps": 40},
            "dynamic": {"c_max": 0.5},
        },
        notes="eps 0.1, not the paper's 0.3: at 0.3, SmallCNN needs far more than a few "
        "minutes of CPU training before adversarial training learns anything. Seed spread "
        "(bench demo's 4,000 images, bf16, PGD-5, 200-point monitor, seeds 0-2, max - min; "
        "benchmarks/seed_spread.py): Standard and TRADES (beta 2) <= 2.6, MART <= 1.6 points "
        "in every cell; TRADES with beta 4 moved by 4.4, and 3 epochs on 2,000 images by tens",
    ),
)


def schedule_note(spec: dict[str, Any]) -> str:
    """What a run's schedules lost against its preset, in words ("" when nothing was lost).

    A run shorter than its preset never reaches the lr decays at or after its last epoch,
    and Dynamic's FOSC criterion, which reaches 0 at ``t_fraction * epochs``, is walked in
    fewer epochs (compressed). ``spec`` is a run spec's dict (``RunSpec.to_dict``).
    """
    if spec.get("epochs") is None:  # an external model: no schedule of ours
        return ""
    epochs = int(spec["epochs"])
    name = spec.get("preset")
    preset = TRAIN_PRESETS.get(name) if name in TRAIN_PRESETS else None
    parts = []
    if preset is not None and epochs < preset.epochs:
        parts.append(f"{epochs} of the preset's {preset.epochs} epochs")
    cut = [m for m in spec.get("milestones", ()) if m >= epochs]
    if cut:
        parts.append("lr decay at epoch " + ", ".join(map(str, cut)) + " never reached")
    frac = spec.get("defense_params", {}).get("t_fraction")
    if frac is not None and preset is not None and epochs != preset.epochs:
        parts.append(
            f"FOSC schedule {'compressed' if epochs < preset.epochs else 'stretched'}: "
            f"c_t reaches 0 at epoch {frac * epochs:.3g}, not {frac * preset.epochs:.3g}"
        )
    return "; ".join(parts)


DEFAULT_PRESET = {"mnist": "paper-4.2-mnist"}


def default_preset(dataset: str) -> str:
    return DEFAULT_PRESET.get(dataset, "paper-4.2-cifar")
