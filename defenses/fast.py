"""Fast adversarial training (Wong, Rice & Kolter, ICLR 2020): CE on one FGSM step from a
uniform random start.

The inner attack is PGD with one step of 1.25 eps from a uniform start in the eps-ball,
projected back into it (the paper's alpha = 1.25 eps on CIFAR-10), whatever the preset's
inner attack: that is the method. It is cheap (two forward-backward passes a batch) and
can collapse to FGSM-only robustness ("catastrophic overfitting"); the per-epoch PGD-20
monitor and the training-health check (``no-robust-collapse``) are there to see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from defenses.base import register
from defenses.standard import Standard


@register
@dataclass
class FastAT(Standard):  # Standard's loss, its own inner attack
    name: ClassVar[str] = "fast"
    display_name: ClassVar[str] = "Fast AT"
    summary: ClassVar[str] = "FGSM with a uniform random start, step 1.25 eps (Wong et al. 2020)"
    preset_params: ClassVar[dict[str, dict[str, Any]]] = {
        "*": {"steps": 1, "step_fraction": 1.25, "start": "uniform"}
    }
