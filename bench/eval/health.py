"""Training health from the per-epoch monitor: stuck at chance, left chance, collapsed.

Users of every adversarial-training code report runs "stuck at 11%" (the loss sits at
``log K`` and the model predicts one class) and fast adversarial training that collapses
(PGD accuracy falls to near zero within an epoch while clean accuracy stays). Both are
visible in the per-epoch monitor that every run stores (clean and PGD-20 accuracy on the
monitored test points), so this module reads only those numbers:

- **at chance**: clean accuracy at most ``CHANCE_FACTOR`` times ``1 / classes`` (20% for
  ten classes; a constant prediction scores at most the largest class's share, 11.35% on
  MNIST's test set);
- **stuck**: still at chance after ``STUCK_EPOCHS`` epochs;
- **collapse**: monitored PGD accuracy below ``COLLAPSE_FRACTION`` of its best so far and at
  least ``COLLAPSE_POINTS`` below it, the first epoch this happens.

The verdicts become two audit checks (``left-chance``, ``no-robust-collapse``), stored
with the other checks of each checkpoint, so tables and the site flag them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bench.data import DATASETS
from bench.eval.checks import FLAG, NOT_EVALUATED, OK, CheckResult
from bench.store.db import EpochMetric

CHANCE_FACTOR = 2.0
STUCK_EPOCHS = 3
COLLAPSE_FRACTION = 0.5
COLLAPSE_POINTS = 0.10  # accuracies are fractions here: 10 points
CHECKS = ("left-chance", "no-robust-collapse")


@dataclass(frozen=True)
class EpochAcc:
    epoch: int  # 1-based
    clean: float  # fractions of the monitored points
    robust: float


@dataclass(frozen=True)
class Collapse:
    epoch: int
    best_epoch: int
    best: float
    to: float


@dataclass(frozen=True)
class Health:
    classes: int
    epochs: int  # epochs seen
    n: int  # monitored test points
    left_chance: int | None  # the first epoch above chance
    collapse: Collapse | None
    last_clean: float | None

    @property
    def chance(self) -> float:
        return CHANCE_FACTOR / self.classes

    @property
    def stuck(self) -> bool:
        return self.left_chance is None and self.epochs >= STUCK_EPOCHS

    def summary(self) -> str:
        """One sentence: where the run stands ("" for a run with no epoch yet)."""
        if not self.epochs:
            return ""
        parts = []
        if self.left_chance is None:
            parts.append(
                f"still at chance after {self.epochs} epoch(s) "
                f"(clean {100 * (self.last_clean or 0):.1f}%, chance <= {100 * self.chance:.0f}%)"
            )
        else:
            parts.append(f"left chance at epoch {self.left_chance}")
        c = self.collapse
        if c is not None:
            parts.append(
                f"PGD-20 collapsed at epoch {c.epoch}: {100 * c.to:.1f}% "
                f"from {100 * c.best:.1f}% at epoch {c.best_epoch}"
            )
        return "; ".join(parts)

    def checks(self) -> list[CheckResult]:
        """The two audit checks of this training history."""
        if self.stuck:
            chance = CheckResult(CHECKS[0], FLAG, self.n, None, self.summary())
        elif self.left_chance is None:
            wait = f"at chance after {self.epochs} epoch(s); judged after {STUCK_EPOCHS}"
            chance = CheckResult(CHECKS[0], NOT_EVALUATED, self.n, None, wait)
        else:
            left = f"left chance at epoch {self.left_chance} of {self.epochs}"
            chance = CheckResult(CHECKS[0], OK, self.n, float(self.left_chance), left)
        c = self.collapse
        if not self.epochs:
            collapse = CheckResult(CHECKS[1], NOT_EVALUATED, 0, None, "no epoch monitored")
        elif c is None:
            held = (
                f"monitored PGD-20 never fell below {COLLAPSE_FRACTION:g} of its best and "
                f"{100 * COLLAPSE_POINTS:.0f} points under it in {self.epochs} epoch(s)"
            )
            collapse = CheckResult(CHECKS[1], OK, self.n, None, held)
        else:
            text = self.summary().split("; ")[-1]
            collapse = CheckResult(CHECKS[1], FLAG, self.n, float(c.epoch), text)
        return [chance, collapse]


def assess(history: Iterable[EpochAcc], classes: int, n: int = 0) -> Health:
    """The health of a run from its per-epoch monitor (any order; epochs are sorted)."""
    rows = sorted(history, key=lambda r: r.epoch)
    chance = CHANCE_FACTOR / classes
    left = next((r.epoch for r in rows if r.clean > chance), None)
    collapse, best, best_epoch = None, -1.0, 0
    for r in rows:
        fell = best - r.robust
        if best > 0 and r.robust < COLLAPSE_FRACTION * best and fell >= COLLAPSE_POINTS:
            collapse = Collapse(r.epoch, best_epoch, best, r.robust)
            break
        if r.robust > best:
            best, best_epoch = r.robust, r.epoch
    return Health(classes, len(rows), n, left, collapse, rows[-1].clean if rows else None)


def from_metrics(metrics: Iterable[EpochMetric], dataset: str) -> Health | None:
    """The health of a run from its stored epoch rows; None without any (an external model)."""
    rows = list(metrics)
    if not rows:
        return None
    history = [EpochAcc(m.epoch, m.clean_acc, m.robust_acc) for m in rows]
    classes = DATASETS.get(dataset).num_classes
    return assess(history, classes, n=max(m.n_monitor for m in rows))


def epoch_note(health: Health, epoch: int) -> str:
    """What the epoch line adds at ``epoch``: a run still at chance from ``STUCK_EPOCHS`` on,
    the epoch it leaves chance (after the first), and the epoch its PGD accuracy collapses."""
    notes = []
    left = health.left_chance
    if (left is None or left > epoch) and epoch >= STUCK_EPOCHS:
        notes.append(f"still at chance after {epoch} epochs")
    elif left == epoch and epoch > 1:
        notes.append("left chance")
    c = health.collapse
    if c is not None and c.epoch == epoch:
        notes.append(f"PGD-20 collapsed from {100 * c.best:.1f}% (epoch {c.best_epoch})")
    return "; ".join(notes)
