"""The MART paper's reference numbers (accuracy %, REFERENCE.md §5), as data.

Keyed by (table, dataset family, defense) -> {attack preset: accuracy}. The dataset
family maps our dataset names onto the paper's columns (cifar10-jpeg is compared
with CIFAR-10 numbers, and labelled as a stand-in wherever it is shown).
"""

from __future__ import annotations

FAMILY = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar10-jpeg": "CIFAR-10"}

_T2_COLS = ("clean", "fgsm", "pgd20", "cw20")
_T2 = {
    "standard": ((99.11, 97.17, 94.62, 94.25), (84.44, 61.89, 47.55, 45.98)),
    "mma": ((98.92, 97.25, 95.25, 94.77), (84.76, 62.08, 48.33, 45.77)),
    "dynamic": ((98.96, 97.34, 95.27, 94.85), (83.33, 62.47, 49.40, 46.94)),
    "trades": ((99.25, 96.67, 94.58, 94.03), (82.90, 62.82, 50.25, 48.29)),
    "mart": ((98.74, 97.87, 96.48, 96.10), (83.07, 65.65, 55.57, 54.87)),
}

TABLE2: dict[tuple[str, str], dict[str, float]] = {}
for _d, (_mn, _cf) in _T2.items():
    TABLE2[("MNIST", _d)] = dict(zip(_T2_COLS, _mn, strict=True))
    TABLE2[("CIFAR-10", _d)] = dict(zip(_T2_COLS, _cf, strict=True))

SOURCE = "Wang et al., ICLR 2020 (MART), Table 2"


# The paper's budgets. 0.031 (the official code) and 8/255 differ by 0.0004: both count as
# the paper's setting, and the tables print which one was used.
PAPER_EPS = {"MNIST": 0.3, "CIFAR-10": 8 / 255}
EPS_TOLERANCE = 1e-3


def paper_value(dataset: str, defense: str, attack: str, eps: float | None = None) -> float | None:
    """The paper's number, or None where it has none or our eps is not the paper's."""
    family = FAMILY.get(dataset, "")
    if eps is not None and abs(eps - PAPER_EPS.get(family, -1.0)) > EPS_TOLERANCE:
        return None
    return TABLE2.get((family, defense), {}).get(attack)
