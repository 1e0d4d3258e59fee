"""Fake robustness, caught (issue 21, first part): input transformations that hide
gradients, the adaptive attacks that see through them (BPDA, EOT), and the probes that
tell which one a model needs."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import torch
from conftest import requires_mnist
from torch import Tensor, nn

import attacks
from attacks.adaptive import BPDA, EOT
from attacks.pgd import PGD
from bench.eval.loop import robust_points
from bench.eval.masking import adaptive_attack, probe
from bench.jobs.transformed import parse_transform
from bench.models import TRANSFORMS
from bench.models.transforms import (
    BitDepth,
    InputTransform,
    RandomResizePad,
    Transformed,
)
from bench.report.runplots import sweep_frame
from bench.report.site.leaderboard import run_file, safe
from bench.store import db as bdb

pytestmark = requires_mnist


class Identity(InputTransform):
    def forward(self, x: Tensor) -> Tensor:
        return x


class ZeroGrad(nn.Module):
    """A layer that passes values and stops gradients (the lecture's "shattered" case)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.detach()


def _data(mnist_small, n: int = 100) -> tuple[Tensor, Tensor]:
    _, _, x, y = mnist_small
    return x[:n], y[:n]


def _acc(model: nn.Module, attack, x: Tensor, y: Tensor) -> float:
    return robust_points(model, x, y, attack, seed=0).accuracy


def _pgd(cls: type[PGD] = PGD, eps: float = 0.3, **kw) -> PGD:
    return cls(eps=eps, steps=20, step_size=eps / 10, start="uniform", **kw)


def test_bpda_through_the_identity_and_eot_on_a_deterministic_model_are_pgd(
    trained_linear, mnist_small
) -> None:
    x, y = _data(mnist_small, 64)
    plain = Transformed(trained_linear, Identity())
    runs = {}
    for name, atk in (("pgd", _pgd()), ("bpda", _pgd(BPDA)), ("eot", _pgd(EOT, samples=3))):
        torch.manual_seed(1)
        runs[name] = atk(plain, x, y)
    assert torch.equal(runs["pgd"], runs["bpda"])
    assert torch.equal(runs["pgd"], runs["eot"])


def test_the_probes_find_zeroed_gradients_randomness_and_pass_a_plain_network(
    trained_linear, mnist_small
) -> None:
    x, y = _data(mnist_small)
    plain = probe(trained_linear, x, y)
    assert not plain.random and not plain.masked and adaptive_attack(plain) == "pgd20"
    shattered = probe(nn.Sequential(ZeroGrad(), trained_linear), x, y)
    assert shattered.missing and adaptive_attack(shattered) == "bpda-pgd20"
    quantised = probe(Transformed(trained_linear, BitDepth(1)), x, y)
    assert quantised.zero == len(y) and adaptive_attack(quantised) == "bpda-pgd20"
    randomised = probe(Transformed(trained_linear, RandomResizePad(4)), x, y)
    assert randomised.random and adaptive_attack(randomised) == "eot-pgd20"
    saturated = probe(Saturated(trained_linear), x, y)
    assert saturated.zero > 0 and not saturated.transformed
    assert adaptive_attack(saturated) == "cw20"


class Saturated(nn.Module):
    """Logits times 1,000: what defensive distillation's student is at T = 1 (its logits
    grew about T times in training), so its softmax saturates in float32."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return 1000 * self.net(x)


def test_cw_on_the_logits_breaks_a_saturated_softmax_that_pgd_overrates(
    trained_linear, mnist_small
) -> None:
    x, y = _data(mnist_small)
    model = Saturated(trained_linear)
    pgd, cw = _acc(model, _pgd(), x, y), _acc(model, attacks.build("cw20", eps=0.3), x, y)
    plain = _acc(trained_linear, _pgd(), x, y)
    print(f"PGD-20 {pgd:.2f} (unscaled {plain:.2f}), CW-inf {cw:.2f}")  # 0.85 (0.00), 0.00
    assert pgd >= plain + 0.3, (pgd, plain)
    assert cw <= plain + 0.05, (cw, plain)


def test_bpda_breaks_bit_depth_reduction_that_pgd_overrates(trained_linear, mnist_small) -> None:
    """Rounding has a zero derivative: PGD only moves by its random start and reports the
    quantised model robust; BPDA differentiates the identity instead and takes it down."""
    x, y = _data(mnist_small)
    defended = Transformed(trained_linear, BitDepth(1))
    pgd, bpda = _acc(defended, _pgd(), x, y), _acc(defended, _pgd(BPDA), x, y)
    assert pgd >= 0.8, pgd  # looks robust (measured 0.88 on these 100 points)
    assert bpda <= pgd - 0.3, (pgd, bpda)  # measured 0.42
    hard = _acc(defended, attacks.build("rays", eps=0.3, queries=300), x, y)
    assert hard <= pgd - 0.2, (pgd, hard)  # labels alone: measured 0.58


def test_eot_beats_pgd_on_a_randomised_model(trained_linear, mnist_small) -> None:
    """A fresh resize-and-pad at every call: one-draw gradients point in other directions
    than the expected one (eps 0.05, pad 8: PGD-20 0.46, EOT with 8 draws 0.14, measured)."""
    x, y = _data(mnist_small)
    defended = Transformed(trained_linear, RandomResizePad(8))
    pgd = _acc(defended, _pgd(eps=0.05), x, y)
    eot = _acc(defended, _pgd(EOT, eps=0.05, samples=8), x, y)
    assert eot <= pgd - 0.2, (pgd, eot)


def test_a_differentiable_random_transformation_keeps_its_own_gradient_under_bpda() -> None:
    """EOT and BPDA differentiate a resize-and-pad as it is (one draw per call), not the
    identity: through the identity, EOT would attack the bare network and come out weaker
    than PGD through the real transformation."""
    t, x = RandomResizePad(8), torch.rand(2, 1, 28, 28, requires_grad=True)
    w = torch.randn(2, 1, 28, 28)
    grads = []
    for f in (t.straight, t):
        torch.manual_seed(0)
        (g,) = torch.autograd.grad((w * f(x)).sum(), [x])
        grads.append(g)
    assert torch.equal(grads[0], grads[1]) and not torch.allclose(grads[0], w)


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_every_transformation_keeps_shape_and_range_and_the_attacks_their_budget(
    name: str, trained_linear, mnist_small
) -> None:
    x, y = _data(mnist_small, 16)
    t = TRANSFORMS.get(name)()
    out = t(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    defended = Transformed(trained_linear, t)
    for preset in ("bpda-pgd20", "eot-pgd20"):
        opts = {"samples": 2} if preset.startswith("eot") else {}
        x_adv = attacks.build(preset, eps=0.1, **opts)(defended, x, y)  # checks the ball
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_a_run_is_evaluated_behind_a_transformation_as_a_run_of_its_own(tmp_path) -> None:
    """`bench eval RUN --transform ...` attacks the network behind the transformation and
    stores it as RUN+TRANSFORM: the bare and the defended model never share a row."""
    from typer.testing import CliRunner

    from bench.cli import app
    from bench.spec.run import resolve

    runner, db = CliRunner(), str(tmp_path / "t.sqlite")
    common = ["--db", db, "--runs-dir", str(tmp_path / "runs")]
    res = runner.invoke(
        app,
        [
            "run",
            "--defense",
            "natural",
            "--model",
            "linear",
            "--dataset",
            "mnist",
            "--epochs",
            "1",
            "--train-subset",
            "512",
            "--test-subset",
            "100",
            "--no-eval",
            "--eps",
            "0.3",
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    run = resolve(
        "natural",
        "linear",
        "mnist",
        train_subset=512,
        test_subset=100,
        overrides={"epochs": 1, "eps": 0.3},
    ).name
    attacks_ = ["--attacks", "clean,pgd20,bpda-pgd20", "--db", db]
    res = runner.invoke(app, ["eval", run, *attacks_, "--transform", "bit-depth:bits=1"])
    assert res.exit_code == 0, res.output
    assert "+bit-depth-bits1" in res.output
    table = runner.invoke(app, ["table", "--format", "csv", "--db", db]).output
    again = runner.invoke(app, ["eval", run, *attacks_, "--transform", "bit-depth:bits=1"])
    assert again.exit_code == 0, again.output  # the same defended run: nothing new stored
    assert runner.invoke(app, ["table", "--format", "csv", "--db", db]).output == table
    df = pd.read_csv(io.StringIO(table))
    df = df[df["run"].str.endswith("+bit-depth-bits1") & (df["checkpoint"] == "best")]
    defended = dict(zip(df["attack"], df["accuracy"], strict=True))
    assert defended["bpda-pgd20"] < defended["pgd20"]  # PGD overrates the quantised model
    bad = runner.invoke(app, ["eval", run, "--db", db, "--transform", "blur:k=3"])
    assert bad.exit_code == 2 and "unknown transform 'blur'" in bad.output
    # the checklist: probed, not declared; the quantised model is flagged, the bare one not
    audit = runner.invoke(app, ["audit", f"{run}+bit-depth-bits1", "--adaptive", "--db", db])
    assert audit.exit_code == 0, audit.output
    assert (
        "100 of 100 points with a zero input gradient; evaluated bpda-pgd20 and bpda-pgd100-r5"
        in audit.output
    )  # BPDA and its convergence rung
    assert "(best): adaptive-not-below-pgd, zero-gradients FLAGGED" in audit.output
    bare = runner.invoke(app, ["audit", run, "--adaptive", "--db", db])
    assert (
        "deterministic; 0 of 100 points with a zero input gradient; evaluated pgd20" in bare.output
    )
    assert "adaptive-not-below-pgd ok" in " ".join(bare.output.split())  # RayS ran too
    # the checklist table: PGD-20 beside the adaptive attack, the worst case and the verdict
    out = runner.invoke(app, ["table", "--masking", "--format", "json", "--db", db])
    assert out.exit_code == 0, out.output
    cells = pd.read_json(io.StringIO(out.output))
    cell = {(r.run, r.column): r for r in cells.itertuples()}
    q = f"{run}+bit-depth-bits1"
    assert cell[q, "adaptive"].attack == "bpda-pgd100-r5"  # the strongest BPDA that ran
    assert cell[q, "worst"].correct <= cell[q, "adaptive"].correct < cell[q, "pgd20"].correct
    assert (
        cell[q, "pgd20"].verdict.startswith("flag: ")
        and "zero-gradients" in cell[q, "pgd20"].verdict
    )
    assert cell[run, "pgd20"].verdict.startswith("ok (") and (run, "adaptive") not in cell
    text = runner.invoke(app, ["table", "--masking", "--ci", "--db", db]).output
    assert "| Natural + bit-depth (bits=1) |" in text and "BPDA PGD-100 x5" in text
    # the eps sweep: the bare network falls to 0% at L-inf eps 1; PGD cannot move the
    # quantised one, whose curve stays far above it until the random start alone (at eps
    # 1, uniform noise over the whole box) breaks it; the audit keeps to the run's eps 0.3
    before = _checks(runner, app, q, db)
    assert before["sweep-reaches-zero"][0] == "not-evaluated"
    acc = {}
    for target in (run, q):
        out = runner.invoke(app, ["sweep", target, "--eps", "0.1,0.3,1", "--db", db, "--quiet"])
        assert out.exit_code == 0, out.output
        acc[target] = [float(ln.split()[2].rstrip("%")) for ln in out.output.splitlines()[1:]]
    assert acc[run][-1] == 0.0 and acc[run] == sorted(acc[run], reverse=True)
    assert all(a > b + 10 for a, b in zip(acc[q][:2], acc[run][:2], strict=True)), acc
    assert acc[q][-1] <= 5.0, acc
    after = _checks(runner, app, q, db)
    assert after.pop("sweep-reaches-zero")[0] == "ok"  # 1 of 100 left at eps 1: tolerance 2
    assert after == {k: v for k, v in before.items() if k != "sweep-reaches-zero"}
    # the run page draws the sweep, and says how to run it where it was not
    sweep = sweep_frame(bdb.connect(db), q)
    assert sweep["eps"].tolist() == [0.1, 0.3, 1.0]
    assert sweep["accuracy"].tolist() == pytest.approx(acc[q], abs=0.01)
    site = tmp_path / "site"
    assert runner.invoke(app, ["report", "--db", db, "--out", str(site)]).exit_code == 0
    page = (site / run_file(q)).read_text()
    assert f"img/sweep-{safe(q)}.png" in page and "eps 1: " in page
    assert (site / "img" / f"sweep-{safe(q)}.png").exists()
    other = f"{run}+feature-squeeze"
    runner.invoke(
        app, ["eval", run, "--attacks", "clean", "--db", db, "--transform", "feature-squeeze"]
    )
    runner.invoke(app, ["report", "--db", db, "--out", str(site)])
    assert f"Not run: <code>bench sweep {other}</code>" in (site / run_file(other)).read_text()


def _checks(runner, app, run: str, db: str) -> dict[str, tuple[str, str]]:
    """The best checkpoint's audit, check -> (status, detail)."""
    out = runner.invoke(app, ["audit", run, "--db", db, "--format", "json"]).output
    rows = json.loads(out)
    return {r["check"]: (r["status"], r["detail"]) for r in rows if r["checkpoint"] == "best"}


class LabelsOnly(nn.Module):
    """The model as a decision-based attacker sees it: one-hot labels, and never a gradient."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        assert not torch.is_grad_enabled(), "a hard-label attack asked for a gradient"
        return nn.functional.one_hot(self.net(x).argmax(1), 10).float()


def test_rays_only_ever_queries_labels_and_breaks_a_plain_network(
    trained_linear, mnist_small
) -> None:
    x, y = _data(mnist_small, 50)
    rays = attacks.build("rays", eps=0.3, queries=300)
    full = rays(trained_linear, x, y)
    labels = rays(LabelsOnly(trained_linear), x, y)
    assert torch.equal(full, labels)  # the scores changed nothing: only labels were used
    clean, pgd = _acc(trained_linear, None, x, y), _acc(trained_linear, _pgd(), x, y)
    hard = _acc(trained_linear, rays, x, y)
    assert hard <= clean - 0.5 and hard <= pgd + 0.15, (clean, pgd, hard)


def test_prediction_over_draws_of_a_random_transformation(trained_linear, mnist_small) -> None:
    """``draws=K``: the mean softmax over K draws, so two calls disagree less often; only
    for a random transformation; one draw is the plain model (and the same run)."""
    x, _ = _data(mnist_small)
    torch.manual_seed(0)
    flips = {}
    for k in (1, 20):
        model = Transformed(trained_linear, RandomResizePad(8), draws=k).eval()
        with torch.no_grad():
            flips[k] = (model(x).argmax(1) != model(x).argmax(1)).float().mean().item()
    print(flips)
    assert flips[20] < flips[1] / 2, flips
    with torch.no_grad():
        one = Transformed(trained_linear, Identity())
        assert torch.equal(one(x), trained_linear(x))
    with pytest.raises(ValueError, match="only for a random transformation"):
        Transformed(trained_linear, BitDepth(1), draws=3)
    assert parse_transform("resize-pad:pad=4,draws=10") == ("resize-pad", {"pad": 4, "draws": 10})
    assert parse_transform("resize-pad:draws=1") == ("resize-pad", {})
    for bad in ("jpeg:draws=3", "resize-pad:draws=0", "resize-pad:draws=1.5"):
        with pytest.raises(ValueError, match="draws"):
            parse_transform(bad)
