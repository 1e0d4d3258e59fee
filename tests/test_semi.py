"""Semi-supervised training: objectives by hand, specs, and pseudo-labelling end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session

import defenses
from bench import data as bdata
from bench import jobs
from bench.cli import app
from bench.data import unlabelled
from bench.jobs.pseudo import pseudo_label
from bench.report.text import describe_semi_run
from bench.spec.auxiliary import attach_unlabelled, labeller_spec
from bench.spec.run import RunSpec, build_for_spec, resolve
from bench.store import db as bdb
from bench.store.checkpoints import load_weights, sha256
from defenses.base import StepContext
from defenses.mart import mart_loss
from defenses.semi import rst_loss, semi_mart_loss, uat_pp_loss
from defenses.trades import trades_loss

LOGITS_NAT = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.4, 1.2, 0.9]]
LOGITS_ADV = [[0.5, 1.5, -0.5], [1.0, -2.0, 0.0], [0.3, 0.2, 1.1]]
LABELS = [0, 2, 1]
UNLAB = [False, True, True]


def softmax(z: list[float]) -> list[float]:
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def kl(p: list[float], q: list[float], eps: float = 0.0) -> float:
    return sum(a * (math.log(a) - math.log(b + eps)) for a, b in zip(p, q, strict=True))


def hand(kind: str, lam: float, gamma: float) -> float:
    """The paper's §3.3 losses, example by example, weights 1 (labelled) or gamma."""
    total = 0.0
    for zn, za, y, u in zip(LOGITS_NAT, LOGITS_ADV, LABELS, UNLAB, strict=True):
        pn, pa = softmax(zn), softmax(za)
        if kind == "mart":
            k = max((k for k in range(3) if k != y), key=lambda k: pa[k])
            bce = -math.log(pa[y]) - math.log(1.0001 - pa[k] + 1e-12)
            loss = bce + lam * kl(pn, pa, 1e-12) * (1.0000001 - pn[y])
        elif kind == "rst":
            loss = -math.log(pn[y]) + lam * kl(pn, pa)
        else:  # uat++
            loss = -math.log(pa[y]) + lam * kl(pn, pa)
        total += (gamma if u else 1.0) * loss
    return total / len(LABELS)


def tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(LOGITS_NAT, dtype=torch.float64),
        torch.tensor(LOGITS_ADV, dtype=torch.float64),
        torch.tensor(LABELS),
        torch.tensor(UNLAB),
    )


FNS = {"mart": semi_mart_loss, "rst": rst_loss, "uat++": uat_pp_loss}


@pytest.mark.parametrize("kind", list(FNS))
@pytest.mark.parametrize(("lam", "gamma"), [(6.0, 1.0), (5.0, 0.5), (1.0, 3.0), (0.0, 0.0)])
def test_semi_objectives_match_hand_computation(kind: str, lam: float, gamma: float) -> None:
    zn, za, y, u = tensors()
    assert FNS[kind](zn, za, y, lam, gamma, u).item() == pytest.approx(
        hand(kind, lam, gamma), rel=1e-9
    )


def test_semi_objectives_reduce_to_their_supervised_parents() -> None:
    zn, za, y, u = tensors()
    # No pseudo-labelled example, or gamma = 1: exactly MART / TRADES.
    for mask in (None, torch.zeros(3, dtype=torch.bool), u):
        torch.testing.assert_close(
            semi_mart_loss(zn, za, y, 5.0, 1.0, mask), mart_loss(zn, za, y, 5.0)
        )
        torch.testing.assert_close(rst_loss(zn, za, y, 4.0, 1.0, mask), trades_loss(zn, za, y, 4.0))
    # gamma only scales the pseudo-labelled part: linear in gamma.
    f = [semi_mart_loss(zn, za, y, 6.0, g, u).item() for g in (0.0, 1.0, 2.0)]
    assert f[2] - f[1] == pytest.approx(f[1] - f[0]) and f[1] > f[0]


def test_uat_pp_gradient_flows_through_both_passes() -> None:
    zn, za, y, u = tensors()
    zn.requires_grad_(True)
    za.requires_grad_(True)
    uat_pp_loss(zn, za, y, 6.0, 0.5, u).backward()
    assert zn.grad is not None and zn.grad.abs().sum() > 0 and za.grad.abs().sum() > 0


def test_semi_defenses_are_registered_and_read_the_mask() -> None:
    for name in ("mart-semi", "rst", "uat++"):
        assert name in defenses.DEFENSES.names()
    model = torch.nn.Linear(3, 3).double()
    x = torch.tensor(LOGITS_NAT, dtype=torch.float64)
    x_adv = torch.tensor(LOGITS_ADV, dtype=torch.float64)
    _, _, y, u = tensors()
    d = defenses.build("mart-semi", lam=6.0, gamma=0.0)
    with_mask = d.loss(model, x, y, x_adv, StepContext(0, 1, None, u))
    only_labelled = semi_mart_loss(model(x[:1]), model(x_adv[:1]), y[:1], 6.0, 1.0) / 3
    torch.testing.assert_close(with_mask, only_labelled)


def test_supervised_specs_keep_their_keys() -> None:
    spec = resolve("mart", "smallcnn", "mnist", "paper-4.2-mnist")
    d = spec.to_dict()
    assert not {"unlabelled", "n_unlabelled", "pseudo_labeller"} & set(d)
    assert RunSpec.from_dict(d) == spec and "-u" not in spec.name


@requires_mnist
def test_attach_unlabelled_records_source_and_refuses_overlap() -> None:
    base = resolve("rst", "tiny-cnn", "mnist", "paper-4.2-mnist", train_subset=256)
    spec = attach_unlabelled(base, "heldout:mnist:10000:10300")
    assert spec.n_unlabelled == 300 and "-u300-" in spec.name
    assert spec.pseudo_labeller == labeller_spec(base).name
    assert spec.pseudo_labeller.startswith("mnist-tiny-cnn-natural-paper-4.2-mnist-n256-")
    assert RunSpec.from_dict(spec.to_dict()) == spec and spec.key != base.key
    with pytest.raises(ValueError, match="overlap the labelled"):
        attach_unlabelled(base, "heldout:mnist:100:400")
    with pytest.raises(ValueError, match="neither"):
        attach_unlabelled(base, "/no/such/file.npy")


def test_array_and_folder_sources(tmp_path: Path) -> None:
    from PIL import Image

    arr = np.random.default_rng(0).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "u.npy", arr)
    src = unlabelled.parse_source(str(tmp_path / "u.npy"))
    assert src.count() == 5
    assert torch.equal(src.load((1, 28, 28)), torch.from_numpy(arr))
    with pytest.raises(ValueError, match="expected uint8"):
        src.load((3, 32, 32))
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(arr[i, 0]).save(tmp_path / "imgs" / f"{i:03d}.png")
    folder = unlabelled.parse_source(str(tmp_path / "imgs"))
    assert folder.count() == 3
    assert torch.equal(folder.load((1, 28, 28)), torch.from_numpy(arr[:3]))


@requires_mnist
def test_pseudo_labelling_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~256 labelled + 256 unlabelled MNIST images, tiny-cnn, 1 epoch: who labelled what."""
    import defenses.semi as dsemi

    seen: list[torch.Tensor] = []
    real = dsemi.semi_mart_loss

    def spy(*args, **kw):
        seen.append(args[5].cpu())
        return real(*args, **kw)

    monkeypatch.setattr(dsemi, "semi_mart_loss", spy)
    engine = bdb.connect(tmp_path / "semi.sqlite")
    base = resolve(
        "mart-semi",
        "tiny-cnn",
        "mnist",
        "paper-4.2-mnist",
        train_subset=256,
        test_subset=64,
        overrides={"epochs": 1, "batch_size": 64, "steps": 2, "lr": 0.05},
        defense_overrides={"gamma": 0.5},
    )
    spec = attach_unlabelled(base, "heldout:mnist:10000:10256")
    runs_dir = tmp_path / "runs"
    run, trained = jobs.train_job(engine, spec, runs_dir=runs_dir, progress=False)
    assert trained and run.status == "done"
    mask = torch.cat(seen)  # the loop told the defense which labels are pseudo-labels
    assert len(mask) == 512 and int(mask.sum()) == 256

    with Session(engine) as s:
        rows = {r.name: r for r in s.scalars(select(bdb.Run))}
        assert set(rows) == {spec.name, spec.pseudo_labeller}  # the labeller was trained
        labeller = rows[spec.pseudo_labeller]
        assert labeller.defense == "natural" and labeller.status == "done"
        ckpt = next(c for c in labeller.checkpoints if c.tag == "last")
        record = rows[spec.name].provenance["pseudo_labels"]
        stored_spec = rows[spec.name].spec
    assert stored_spec["unlabelled"] == "heldout:mnist:10000:10256"
    assert stored_spec["n_unlabelled"] == 256
    assert stored_spec["pseudo_labeller"] == spec.pseudo_labeller
    assert record["labeller_run"] == spec.pseudo_labeller
    assert record["labeller_sha256"] == ckpt.sha256 == sha256(Path(ckpt.path))
    assert record == json.loads((runs_dir / spec.name / unlabelled.PSEUDO_JSON).read_text())

    # The stored labels are the labeller's predictions on exactly those images.
    labels = torch.load(runs_dir / spec.name / unlabelled.PSEUDO_FILE, weights_only=True)["labels"]
    model = load_weights(build_for_spec(labeller_spec(base)), Path(ckpt.path))
    x_u = bdata.load_split("mnist", True)[0][10000:10256]
    assert torch.equal(labels, pseudo_label(model, x_u))
    assert sum(record["class_counts"]) == 256 == len(labels)
    truth = bdata.load_split("mnist", True)[1][10000:10256]
    assert record["agreement_with_true_labels"] == pytest.approx(
        (labels == truth).float().mean().item()
    )
    line = describe_semi_run(stored_spec, {"pseudo_labels": record})
    assert line is not None and spec.pseudo_labeller in line and ckpt.sha256[:12] in line

    # Training saw labelled images first, then the pseudo-labelled ones.
    x_lab, y_lab = bdata.subset(*bdata.load_split("mnist", True), 256)
    x_all, y_all = unlabelled.with_pseudo_labelled(
        spec.unlabelled, spec.n_unlabelled, spec.dataset, runs_dir / spec.name, x_lab, y_lab
    )
    assert len(y_all) == 512 and torch.equal(y_all[256:], labels)
    assert torch.equal(x_all[:256], x_lab) and torch.equal(x_all[256:], x_u)

    # Asked again: nothing is retrained or relabelled.
    _, again = jobs.train_job(engine, spec, runs_dir=runs_dir, progress=False)
    assert not again

    # The listing and Table 5 say which images were pseudo-labelled by which model.
    from typer.testing import CliRunner

    cli, db = CliRunner(), str(tmp_path / "semi.sqlite")
    listing = cli.invoke(app, ["ls", "runs", "--db", db]).output
    source = "256 unlabelled images (heldout:mnist:10000:10256)"
    assert f"{source} pseudo-labelled by {spec.pseudo_labeller}" in listing
    jobs.eval_job(engine, spec.name, attack_names=("clean", "pgd20"), progress=False)
    res = cli.invoke(app, ["table", "--paper", "--table", "5", "--db", db])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "| MART " in out and "Natural" in out and "PGD-20" in out and "(—)" in out
    assert spec.pseudo_labeller in out and ckpt.sha256[:12] in out and "256 labelled" in out
    assert "17,000" in out  # the data set is labelled as the partial offline copy
