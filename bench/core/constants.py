"""Facts the whole harness shares, each written once.

A number that two modules both need lives here; a module that needs it imports it. If one
of these changes, every table, key and default changes with it, which is the point.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

# L-inf budgets (docs/reference.md §3): the paper's CIFAR-10 8/255, the official MART
# code's 0.031 (they differ by 0.0004 and both count as the paper's setting), MNIST 0.3.
EPS_CIFAR = 8 / 255
EPS_CIFAR_CODE = 0.031
EPS_MNIST = 0.3

# The Table 2 attacks: what `bench run`, `bench eval`, the demo and zoo evaluations use
# unless told otherwise.
DEFAULT_ATTACKS: tuple[str, ...] = ("clean", "fgsm", "pgd20", "cw20")
# The paper's Table 4 adds PGD-100 (CIFAR-10 WRN-34-10, best and last checkpoints).
TABLE4_ATTACKS: tuple[str, ...] = ("clean", "fgsm", "pgd20", "pgd100", "cw20")
# The per-epoch check that picks the "best" checkpoint (as the papers do).
MONITOR_ATTACK = "pgd20"
# Threat models: the norm a budget is measured in. A run trains (and is monitored and, by
# default, evaluated) in one of them; attacks say theirs (attacks/base.py Attack.norm).
LINF, L2 = "linf", "l2"
NORMS = (LINF, L2)
SWEEP_TOP = 1.0  # L-inf eps at which every model must fall to ~0% (bench sweep; the audit)
MAX_L2_EPS = 100.0  # above the L2 diameter of any image set here (CIFAR-10: sqrt(3072) ~ 55)
MONITOR_ATTACKS = {LINF: MONITOR_ATTACK, L2: "pgd20-l2"}
DEFAULT_L2_ATTACKS: tuple[str, ...] = ("clean", "pgd20-l2", "cw20-l2")
# Test points per attack batch. It is part of an evaluation's identity (EvalSpec), since
# a batch shares one random start draw.
EVAL_BATCH = 256
# Test points of a RobustBench zoo evaluation unless told otherwise (`bench zoo eval`).
ZOO_TEST_SUBSET = 1000

# A run folder's resume state (weights, optimizer, counters; bench/train/loop.py).
STATE_FILE = "state.pt"
TEACHER_FILE = "teacher.safetensors"  # a distilled run's copy of its teacher's weights
TEACHER_CHECKPOINT = "last"  # the teacher's checkpoint it learns from (fully trained)


class RunKind(str, Enum):
    """Whom a run's weights come from (``Run.spec["kind"]``; a trained run's spec has no
    kind): trained here, a model this harness did not train (a zoo entry,
    bench/jobs/zoo.py), or a run of ours behind an input transformation evaluated as its own
    run (bench/jobs/transformed.py)."""

    TRAINED = "trained"
    EXTERNAL = "external"
    TRANSFORMED = "transformed"  # a trained run behind an input transformation

    def __str__(self) -> str:
        return self.value


def is_external(spec: dict) -> bool:
    """Whether a run's stored spec is of a model this harness did not train: the one way
    an external run is recognised (the tables read it from the frames' ``external``)."""
    return spec.get("kind") == RunKind.EXTERNAL


ZOO_DEFENSE = "zoo"  # the defense column of a RobustBench zoo run (bench/jobs/zoo.py)


def external_source(defense: str) -> tuple[str, str, str]:
    """An external run's origin: short (after its name in a table), long, and its weights.
    The RobustBench zoo, or a user's ``--model-def`` (bench/jobs/external.py)."""
    if defense == ZOO_DEFENSE:
        return "RobustBench", "RobustBench model-zoo entry", "published checkpoint"
    return "external", "external model (bench eval --model-def)", "given checkpoint"


def trained_spec(spec: dict) -> dict:
    """The spec of the network a run evaluates: a transformed run's base spec (it keeps it
    under ``base``), any other run's own."""
    return spec["base"] if spec.get("kind") == RunKind.TRANSFORMED else spec


def run_norm(spec: dict) -> str:
    """The threat model a stored run trained in (a transformed run: its base's); L-inf
    specs do not name it."""
    return trained_spec(spec).get("norm", LINF)


class Protocol(str, Enum):
    """How an attack preset becomes per-point results (``AttackPreset.protocol``,
    bench/eval/protocols.py)."""

    CLEAN = "clean"  # predictions on the unperturbed points
    SINGLE = "single"  # one attack loop over the points
    AUTOATTACK = "autoattack"  # the AutoAttack parts chained over the points still robust
    TRANSFER = "transfer"  # adversarial examples crafted on a surrogate run

    def __str__(self) -> str:  # the name a registry and a message show
        return self.value


# `bench regress`'s baseline: in the repository, beside the small checkpoints it names
# (made by make_checkpoints.py there; bench/jobs/regress.py).
REGRESS_BASELINE = (
    Path(__file__).resolve().parents[2] / "results" / "reference" / "regress" / "attacks.json"
)
REGRESS_TRAIN_BASELINE = REGRESS_BASELINE.with_name("training.json")  # the pinned tiny grid


class Tag(str, Enum):
    """A run's checkpoints: the epoch with the best monitored PGD-20 accuracy on the first
    test points (the papers' convention), the last epoch, and, with ``--val-subset``, the
    epoch with the best PGD-20 accuracy on training images held out of training."""

    BEST = "best"
    LAST = "last"
    BEST_VAL = "best-val"


CHECKPOINTS: tuple[str, ...] = (Tag.BEST.value, Tag.LAST.value)  # every trained run has these
ALL_CHECKPOINTS: tuple[str, ...] = (*CHECKPOINTS, Tag.BEST_VAL.value)


class RunStatus(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    DONE = "done"


def seed_mix(seed: int, step: int) -> int:
    """One 63-bit seed from (seed, epoch) or (seed, anything): every reseeding uses it.

    Not plain ``seed + step``: that would make (seed=0, epoch=1) replay (seed=1, epoch=0).
    """
    return (seed * 1_000_003 + step) % (1 << 63)
