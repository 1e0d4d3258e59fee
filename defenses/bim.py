"""BIM training (Kurakin, Goodfellow & Bengio, ICLR 2017): CE on the basic iterative
method's examples, iterated FGSM from the clean point with no random start.

The steps and step size are the preset's inner attack (PGD's, eps/4 by default); only the
start is the method's own. The lecture lists it with FGSM training among the early
adversarial training methods that a stronger or random-start attack can break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from defenses.base import register
from defenses.standard import Standard


@register
@dataclass
class BIMTraining(Standard):  # Standard's loss, its own inner attack
    name: ClassVar[str] = "bim"
    display_name: ClassVar[str] = "BIM AT"
    summary: ClassVar[str] = "CE on iterated FGSM from the clean point (Kurakin et al. 2017)"
    preset_params: ClassVar[dict[str, dict[str, Any]]] = {"*": {"start": "none"}}
