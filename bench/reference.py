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


# Table 5 (with unlabelled data; Natural and PGD-20), per model: WRN-34-8 used 100K
# unlabelled Tiny Images, WRN-28-10 500K (REFERENCE.md §5). Our semi defenses' names.
TABLE5_SOURCE = "Wang et al., ICLR 2020 (MART), Table 5"
TABLE5_SETTING = {"wrn-34-8": "WRN-34-8 + 100K unlabelled", "wrn-28-10": "WRN-28-10 + 500K"}
TABLE5: dict[tuple[str, str], dict[str, float]] = {
    ("wrn-34-8", "uat++"): {"clean": 86.04, "pgd20": 59.41},
    ("wrn-34-8", "rst"): {"clean": 88.24, "pgd20": 59.60},
    ("wrn-34-8", "mart-semi"): {"clean": 86.68, "pgd20": 61.88},
    ("wrn-28-10", "uat++"): {"clean": 86.21, "pgd20": 62.76},
    ("wrn-28-10", "rst"): {"clean": 89.70, "pgd20": 63.10},
    ("wrn-28-10", "mart-semi"): {"clean": 86.30, "pgd20": 65.04},
}


def table5_value(
    dataset: str, model: str, defense: str, attack: str, eps: float | None = None
) -> float | None:
    """Table 5's number for CIFAR-10 at the paper's eps and the paper's model, else None."""
    if FAMILY.get(dataset) != "CIFAR-10":
        return None
    if eps is not None and abs(eps - PAPER_EPS["CIFAR-10"]) > EPS_TOLERANCE:
        return None
    return TABLE5.get((model, defense), {}).get(attack)
