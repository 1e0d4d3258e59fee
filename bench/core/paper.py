"""The MART paper's reference numbers (accuracy %, docs/reference.md §6), as data.

Keyed by (table, dataset family, defense) -> {attack preset: accuracy}. The dataset
family maps our dataset names onto the paper's columns (cifar10-jpeg is compared
with CIFAR-10 numbers, and labelled as a stand-in wherever it is shown).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.constants import DEFAULT_ATTACKS, EPS_CIFAR, EPS_MNIST, TABLE4_ATTACKS
from bench.core.registry import Registry

FAMILY = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar10-jpeg": "CIFAR-10"}

_T2_COLS = DEFAULT_ATTACKS
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
PAPER_EPS = {"MNIST": EPS_MNIST, "CIFAR-10": EPS_CIFAR}
EPS_TOLERANCE = 1e-3


# Table 5 (with unlabelled data; Natural and PGD-20), per model: WRN-34-8 used 100K
# unlabelled Tiny Images, WRN-28-10 500K (docs/reference.md §6.4). Our semi defenses' names.
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


# Table 3 (black-box transfer, the same models as Table 2) and Table 4 (WRN-34-10 on
# CIFAR-10, best / last checkpoint), docs/reference.md §6.2 and §6.3. Keyed like TABLE2,
# by our attack presets; Table 4 keys (attack, checkpoint), its Natural and FGSM columns
# being single.
TABLE3_SOURCE = "Wang et al., ICLR 2020 (MART), Table 3 (black-box)"
TABLE4_SOURCE = "Wang et al., ICLR 2020 (MART), Table 4 (WRN-34-10, best / last)"
_T3_COLS = ("transfer-fgsm", "transfer-pgd10", "transfer-pgd20", "transfer-cw20")
_T3 = {
    "standard": ((96.12, 95.73, 95.47, 96.34), (79.98, 80.27, 80.01, 80.85)),
    "mma": ((96.11, 95.94, 95.81, 96.87), (80.28, 80.52, 80.48, 81.32)),
    "dynamic": ((97.60, 96.25, 95.82, 97.03), (81.37, 81.71, 81.38, 82.05)),
    "trades": ((97.49, 96.03, 95.73, 97.20), (81.52, 81.73, 81.53, 82.11)),
    "mart": ((97.77, 96.96, 96.97, 98.36), (82.75, 82.93, 82.70, 82.95)),
}
TABLE3: dict[tuple[str, str], dict[str, float]] = {}
for _d, (_mn, _cf) in _T3.items():
    TABLE3[("MNIST", _d)] = dict(zip(_T3_COLS, _mn, strict=True))
    TABLE3[("CIFAR-10", _d)] = dict(zip(_T3_COLS, _cf, strict=True))

_T4_COLS = (
    ("clean", "best"),
    ("fgsm", "best"),
    ("pgd20", "best"),
    ("pgd20", "last"),
    ("pgd100", "best"),
    ("pgd100", "last"),
    ("cw20", "best"),
    ("cw20", "last"),
)
_T4 = {
    "standard": (87.30, 56.10, 52.68, 49.31, 51.55, 49.03, 50.73, 48.47),
    "dynamic": (84.51, 63.53, 55.03, 51.70, 54.12, 50.07, 51.34, 49.27),
    "trades": (84.22, 64.70, 56.40, 53.16, 55.68, 51.27, 51.98, 51.12),
    "mart": (84.17, 67.51, 58.56, 57.39, 57.88, 55.04, 54.58, 54.53),
}
TABLE4: dict[str, dict[tuple[str, str], float]] = {
    _d: dict(zip(_T4_COLS, _v, strict=True)) for _d, _v in _T4.items()
}
TABLE4_MODEL = "wrn-34-10"
# Tables 2 and 3: the models and training presets of the paper's comparison (§4.2). A run
# of another model or preset gets no paper number (it would compare unlike with unlike).
PAPER_MODEL = {"MNIST": "smallcnn", "CIFAR-10": "resnet18"}
PAPER_PRESET = {"MNIST": "paper-4.2-mnist", "CIFAR-10": "paper-4.2-cifar"}


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables as the harness lays it out: its columns (attack presets),
    what it measures, its source, its numbers and whom they are for."""

    number: int
    title: str  # what it measures, for the heading
    attacks: tuple[str, ...]  # its columns, in order
    source: str
    fill: str  # how to fill an empty one
    # (family, defense) -> {(attack, checkpoint): accuracy %}; Tables 2 and 3: "best" only
    numbers: dict[tuple[str, str], dict[tuple[str, str], float]]
    split: tuple[str, ...] = ()  # attacks shown as two columns, best and last (Table 4)
    family: str | None = None  # the only data-set family it has (Table 4: CIFAR-10)
    model: str | None = None  # the only model its numbers are for (else PAPER_MODEL)


def _best(table: dict[tuple[str, str], dict[str, float]]) -> dict:
    return {k: {(a, "best"): v for a, v in row.items()} for k, row in table.items()}


PAPER_TABLES: Registry[PaperTable] = Registry("paper table")
PAPER_TABLES.add(
    "2",
    PaperTable(
        2,
        "white-box",
        DEFAULT_ATTACKS,
        SOURCE,
        " Fill it with `bench experiment table2-mnist` (or `bench run` / `bench eval`).",
        _best(TABLE2),
    ),
)
PAPER_TABLES.add(
    "3",
    PaperTable(
        3,
        "black-box transfer",
        _T3_COLS,
        TABLE3_SOURCE,
        " Fill it with `bench eval RUN --attacks transfer-fgsm,transfer-pgd10,transfer-pgd20,"
        "transfer-cw20` on trained runs (the surrogate is trained on demand).",
        _best(TABLE3),
    ),
)
PAPER_TABLES.add(
    "4",
    PaperTable(
        4,
        "white-box, best and last checkpoints",
        TABLE4_ATTACKS,
        TABLE4_SOURCE,
        " Fill it with `bench experiment table4-wrn` (CIFAR-10 WRN-34-10 runs).",
        {("CIFAR-10", d): v for d, v in TABLE4.items()},
        split=("pgd20", "pgd100", "cw20"),
        family="CIFAR-10",
        model=TABLE4_MODEL,
    ),
)


def paper_table(number: int) -> PaperTable:
    """Table ``number`` (2, 3 or 4); another number is a one-line error."""
    if str(number) not in PAPER_TABLES:
        raise ValueError(f"unknown paper table {number}; valid: {', '.join(PAPER_TABLES)}")
    return PAPER_TABLES.get(str(number))


def not_the_papers(table: int, dataset: str, model: str, preset: str | None) -> str:
    """Why a block of a paper table has no paper numbers ("" when it is the paper's
    setting, as far as model and preset go; eps is checked per cell)."""
    t, family = paper_table(table), FAMILY.get(dataset, "")
    if t.model is not None:
        return "" if model == t.model and family == t.family else f"model {model}"
    if model != PAPER_MODEL.get(family, model):
        return f"model {model}, not the paper's {PAPER_MODEL[family]}"
    if preset is not None and preset != PAPER_PRESET.get(family, preset):
        return f"preset {preset}, not the paper's {PAPER_PRESET[family]}"
    return ""


def paper_number(
    table: int,
    dataset: str,
    defense: str,
    attack: str,
    checkpoint: str = "best",
    eps: float | None = None,
    model: str | None = None,
    preset: str | None = None,
) -> float | None:
    """The paper's number in Table 2, 3 or 4 for one cell, or None where it has none.

    None too where our eps is not the paper's, or our model or preset is not the one the
    table's numbers are for (Tables 2 and 3: the §4.2 model and preset of the data set, best
    checkpoint only; Table 4: WRN-34-10 on CIFAR-10, best and last).
    """
    t, family = paper_table(table), FAMILY.get(dataset, "")
    if eps is not None and abs(eps - PAPER_EPS.get(family, -1.0)) > EPS_TOLERANCE:
        return None
    if t.family is not None and family != t.family:
        return None
    if model is not None and not_the_papers(table, dataset, model, preset):
        return None
    return t.numbers.get((family, defense), {}).get((attack, checkpoint))


# RobustBench's published numbers for model-zoo entries (CIFAR-10, Linf, eps 8/255): clean
# and AutoAttack accuracy %. robustbench 1.1.1 ships no model_info files, so they are here.
ROBUSTBENCH_SOURCE = "RobustBench leaderboard (CIFAR-10, Linf 8/255)"
ROBUSTBENCH: dict[str, dict[str, float]] = {
    "Wang2020Improving": {"clean": 87.50, "autoattack": 56.29},  # MART, WRN-28-10 + 500K
    "Zhang2019Theoretically": {"clean": 84.92, "autoattack": 53.08},  # TRADES, WRN-34-10
}
