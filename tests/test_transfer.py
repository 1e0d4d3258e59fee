"""Black-box transfer: the surrogate is another run, trained on demand, and the only model the
examples are crafted on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_mnist
from eval_helpers import SOFTMAX, trained_run
from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import nn

import attacks
from attacks.transfer import Transfer
from bench import data as bdata
from bench import jobs
from bench.eval.loop import robust_points
from bench.eval.transfer import surrogate_spec
from bench.spec.run import RunSpec, build_for_spec, resolve
from bench.store import db as bdb
from bench.store.checkpoints import load_weights


def test_surrogate_defaults_follow_the_paper() -> None:
    cifar = resolve("mart", "resnet18", "cifar10", train_subset=500, overrides={"epochs": 3})
    sur = surrogate_spec(cifar)
    assert (sur.defense, sur.model, sur.dataset) == ("natural", "resnet50", "cifar10")
    assert (sur.train_subset, sur.epochs, sur.seed, sur.lr) == (500, 3, 0, cifar.lr)
    mnist = resolve("trades", "smallcnn", "mnist", overrides={"epochs": 2})
    assert surrogate_spec(mnist).model == "smallcnn"  # a copy of the defense's architecture
    over = surrogate_spec(mnist, {"surrogate_model": "tiny-cnn", "surrogate_epochs": 1})
    assert (over.model, over.lr, over.epochs) == ("tiny-cnn", mnist.lr, 1)
    # the target's monitored points and precision: a surrogate of a run monitored on 1,000
    # points is not monitored (PGD-20 every epoch) on the whole test set
    paper = resolve(
        "mart", "smallcnn", "mnist", monitor_subset=1000, precision="bf16", overrides={"epochs": 2}
    )
    sur = surrogate_spec(paper)
    assert (sur.monitor_subset, sur.precision) == (1000, "bf16")
    assert surrogate_spec(mnist).monitor_subset is None and sur.key != surrogate_spec(mnist).key


class Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_the_target_is_never_queried(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    surrogate = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    target = Counting(trained_linear)
    torch.manual_seed(0)
    x_adv = Transfer(eps=0.1, base="pgd20").with_surrogate(surrogate)(target, x[:16], y[:16])
    assert target.calls == 0
    torch.manual_seed(0)
    assert torch.equal(x_adv, attacks.build("pgd20", eps=0.1)(surrogate, x[:16], y[:16]))
    with pytest.raises(ValueError, match="surrogate"):
        Transfer(eps=0.1)(trained_linear, x[:4], y[:4])
    with pytest.raises(ValueError, match="white-box"):
        Transfer(eps=0.1).with_surrogate(trained_linear)(trained_linear, x[:4], y[:4])


def test_examples_are_crafted_once_and_shared_by_every_target(
    trained_linear: nn.Module, mnist_small
) -> None:
    """With a recorded surrogate, a batch is crafted once: a second target (or checkpoint)
    gets the very examples, and the random state the crafting left; a kept point gets what
    crafting only the kept points gives; another seed crafts anew."""
    _, _, x, y = mnist_small
    x, y = x[:32], y[:32]
    torch.manual_seed(1)
    surrogate = Counting(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    other = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    atk = Transfer(eps=0.1, base="pgd20").with_surrogate(surrogate, "sur", "0123abcd")
    first = robust_points(trained_linear, x, y, atk, batch_size=16, seed=0, skip_wrong=True)
    calls = surrogate.calls
    second = robust_points(other, x, y, atk, batch_size=16, seed=0, skip_wrong=True)
    assert calls > 0 and surrogate.calls == calls  # the second target reused both batches
    fresh = Transfer(eps=0.1, base="pgd20").with_surrogate(surrogate)  # unrecorded: no memory
    for target, res in ((trained_linear, first), (other, second)):
        again = robust_points(target, x, y, fresh, batch_size=16, seed=0, skip_wrong=True)
        assert np.array_equal(again.robust, res.robust)
    torch.manual_seed(5)
    a = atk(other, x[:16], y[:16])
    state = torch.get_rng_state()
    calls = surrogate.calls
    torch.manual_seed(5)
    assert torch.equal(atk(trained_linear, x[:16], y[:16]), a)
    assert surrogate.calls == calls and torch.equal(torch.get_rng_state(), state)
    kept = a.clone()
    a.add_(1.0)  # a caller's in-place change never reaches the remembered examples
    torch.manual_seed(5)
    assert torch.equal(atk(other, x[:16], y[:16]), kept)
    keep = torch.arange(16) % 3 == 0
    torch.manual_seed(5)
    only_kept = attacks.build("pgd20", eps=0.1)(surrogate, x[:16], y[:16], keep=keep)
    torch.manual_seed(5)
    assert torch.equal(atk(other, x[:16], y[:16], keep=keep), only_kept)
    torch.manual_seed(6)
    atk(other, x[:16], y[:16])
    assert surrogate.calls > calls  # another random start: crafted anew


@requires_mnist
def test_transfer_evaluation_trains_and_records_a_surrogate(tmp_path: Path) -> None:
    engine, spec = trained_run(tmp_path, "standard", test_subset=64)
    names = ["pgd20", "transfer-pgd20", "transfer-fgsm"]
    by = {
        e.attack: e
        for e in jobs.eval_job(
            engine, spec.name, attack_names=names, checkpoints=["last"], progress=False
        )
    }
    with Session(engine) as s:
        runs = {r.key: r for r in s.scalars(select(bdb.Run))}
        assert len(runs) == 2
        target = runs[spec.key]
        (sur,) = [r for r in runs.values() if r.key != spec.key]
        assert (sur.defense, sur.model, sur.status) == ("natural", SOFTMAX, "done")
        assert target.defense == "standard"
        sur_last = next(c for c in sur.checkpoints if c.tag == "last")
        tgt_last = next(c for c in target.checkpoints if c.tag == "last")
        sur_path, tgt_path = sur_last.path, tgt_last.path
    assert sur_last.sha256 != tgt_last.sha256
    for name in ("transfer-pgd20", "transfer-fgsm"):
        p = by[name].attack_params
        assert (p["surrogate_run"], p["surrogate_sha256"]) == (sur.name, sur_last.sha256)
        assert p["crafted_with"]["attack"] == ("pgd" if name.endswith("pgd20") else "fgsm")
    # A transfer attack is weaker than the white-box one on the same model (seeded setup,
    # checked: 35 vs 30 of 64 points robust; the surrogate itself keeps 18).
    assert by["transfer-pgd20"].correct >= by["pgd20"].correct
    # The stored mask is what examples crafted on the surrogate do to the target.
    sur_model = load_weights(build_for_spec(RunSpec.from_dict(sur.spec)), Path(sur_path))
    tgt_model = load_weights(build_for_spec(spec), Path(tgt_path))
    x, y = bdata.subset(*bdata.load_split("mnist", False), 64)
    atk = attacks.build("transfer-pgd20", eps=spec.eps).with_surrogate(sur_model)
    again = robust_points(tgt_model, x, y, atk, batch_size=256, seed=0)
    assert np.array_equal(again.robust, by["transfer-pgd20"].robust())
    white = robust_points(tgt_model, x, y, attacks.build("pgd20", eps=spec.eps), seed=0)
    assert np.array_equal(white.robust, by["pgd20"].robust())
    assert not np.array_equal(again.robust, white.robust)
    # The examples hurt the model they were crafted on more than the target.
    on_surrogate = robust_points(sur_model, x, y, attacks.build("pgd20", eps=spec.eps), seed=0)
    assert on_surrogate.correct < again.correct

    # Asked again: nothing is trained or evaluated twice.
    again_rows = jobs.eval_job(
        engine, spec.name, attack_names=names, checkpoints=["last"], progress=False
    )
    assert [e.id for e in again_rows] == [by[n].id for n in names]
    with Session(engine) as s:
        assert len(list(s.scalars(select(bdb.Run)))) == 2


@requires_mnist
def test_a_surrogate_identical_to_the_target_is_refused(tmp_path: Path) -> None:
    engine, spec = trained_run(tmp_path, "natural", test_subset=8)
    with pytest.raises(ValueError, match="surrogate spec is the target"):
        jobs.eval_job(
            engine, spec.name, attack_names=["transfer-fgsm"], checkpoints=["last"], progress=False
        )
