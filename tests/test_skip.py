"""Skipping points already wrong on clean inputs changes no kept point's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from conftest import requires_mnist

import attacks
from attacks.base import Attack
from bench.eval.loop import robust_points


@requires_mnist
@pytest.mark.parametrize("name", ["pgd20", "cw20", "fgsm", "pgd100"])
def test_masks_are_identical_with_and_without_the_skip(name, trained_linear, mnist_small):
    _, _, x, y = mnist_small
    atk = attacks.build(name, eps=0.1)
    full = robust_points(trained_linear, x, y, atk, batch_size=64, seed=3)
    skip = robust_points(trained_linear, x, y, atk, batch_size=64, seed=3, skip_wrong=True)
    clean = robust_points(trained_linear, x, y, None, batch_size=64)
    assert 0 < (~clean.robust).sum() < len(y)  # some points are skipped, some attacked
    assert (skip.robust == (full.robust & clean.robust)).all()
    # Here no point that is wrong on clean inputs survives the attack, so the masks are equal:
    assert (skip.robust == full.robust).all()


@dataclass
class Recording(Attack):
    """Moves nothing; records how many points it was asked to attack."""

    seen: list = field(default_factory=list)
    name: ClassVar[str] = "recording"

    def perturb(self, model, x, y):
        self.seen.append(len(y))
        return x


@requires_mnist
def test_a_point_wrong_on_clean_inputs_is_never_attacked(trained_linear, mnist_small):
    _, _, x, y = mnist_small
    clean = robust_points(trained_linear, x, y, None, batch_size=64)
    atk = Recording(eps=0.1)
    res = robust_points(trained_linear, x, y, atk, batch_size=64, skip_wrong=True)
    assert sum(atk.seen) == int(clean.robust.sum()) < len(y)
    assert (res.robust == clean.robust).all()  # nothing moved: robust == clean
