"""A user's own model (``bench eval --model-def``): the same masks as the same weights
evaluated as a trained run, its provenance stored, repeated calls skipped, bad files and
definitions refused in one line with nothing stored, and input normalisation in front of
the network so that attacks stay in [0, 1] pixels."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.eval.perpoint import worst_case
from bench.models.external import InputAdapter, ModelDef, build, read_state
from bench.spec.run import resolve
from bench.store import db as bdb

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _masks(db: str, run: str) -> dict[str, tuple[int, int, bytes]]:
    with Session(bdb.connect(db)) as s:
        row = bdb.find_run(s, run)
        assert row is not None
        return {e.attack: (e.n, e.correct, bytes(e.robust_mask)) for e in row.evaluations}


@requires_mnist
def test_own_model_gives_the_masks_of_the_same_weights_as_a_trained_run(tmp_path) -> None:
    db, runs = str(tmp_path / "t.sqlite"), tmp_path / "runs"
    spec_args = {"train_subset": 512, "test_subset": 100, "overrides": {"epochs": 1, "eps": 0.3}}
    points = ["--test-subset", "100", "--attacks", "clean,pgd20", "--db", db]
    train = "--defense natural --model smallcnn --epochs 1 --eps 0.3 --train-subset 512"
    res = runner.invoke(app, ["run", *train.split(), *points, "--runs-dir", str(runs)])
    assert res.exit_code == 0, res.output
    trained = resolve("natural", "smallcnn", "mnist", **spec_args).name
    weights = runs / trained / "best.safetensors"
    own = ["eval", "--model-def", "bench.models.nets:smallcnn", "--checkpoint", str(weights)]
    own += ["--dataset", "mnist", *points, "--quiet"]
    res = runner.invoke(app, own)
    assert res.exit_code == 0, res.output
    ext = res.output.split()[0]
    assert ext.startswith("ext-mnist-smallcnn-")
    ours, theirs = _masks(db, trained), _masks(db, ext)
    assert theirs["pgd20"] == ours["pgd20"] and theirs["clean"] == ours["clean"]
    with Session(bdb.connect(db)) as s:
        row = bdb.find_run(s, ext)
        assert row.spec["model_def"] == {"target": "bench.models.nets:smallcnn", "args": {}}
        assert row.spec["checkpoint_sha256"] == row.checkpoints[0].sha256
        n_evals = len(s.scalars(select(bdb.Evaluation)).all())
    again = runner.invoke(app, own)  # stored: nothing is redone or added
    assert again.exit_code == 0, again.output
    with Session(bdb.connect(db)) as s:
        assert len(s.scalars(select(bdb.Evaluation)).all()) == n_evals
    table = runner.invoke(app, ["table", "--paper", "--db", db]).output
    assert "smallcnn (external)" in table.replace("bench.models.nets:", "")


def _save(tmp_path: Path, obj: object, name: str = "w.pt") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-def", "no_such_pkg.nets:Net"], "cannot import 'no_such_pkg.nets'"),
        (["--model-def", "bench.models.nets"], "expected PACKAGE.MODULE:CALLABLE"),
        (["--model-def", "bench.models.nets:nothing"], "has no 'nothing'"),
        (["--model-def", "bench.models.nets:linear", "--model-args", "depth=3"], "unexpected"),
        (["--model-def", "bench.models.nets:tiny_cnn"], "does not fit bench.models.nets:tiny_cnn"),
        (["--model-args", "width=2"], "--model-args describes a --model-def model"),
        (
            ["--model-def", "bench.models.nets:linear", "--attacks", "transfer-pgd20"],
            "transfer attacks need a surrogate run",
        ),
    ],
)
def test_a_bad_definition_is_refused_in_one_line_and_nothing_is_stored(
    tmp_path, args: list[str], message: str
) -> None:
    from bench.models.nets import linear

    weights = _save(tmp_path, linear().state_dict())
    db = str(tmp_path / "t.sqlite")
    res = runner.invoke(
        app, ["eval", *args, "--checkpoint", str(weights), "--dataset", "mnist", "--db", db]
    )
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    if Path(db).exists():
        with Session(bdb.connect(db)) as s:
            assert s.scalars(select(bdb.Run)).all() == []


@requires_mnist
def test_the_same_weights_with_other_settings_are_another_run(tmp_path) -> None:
    from bench.models.nets import linear

    weights, db = _save(tmp_path, linear().state_dict()), str(tmp_path / "t.sqlite")
    base = ["eval", "--model-def", "bench.models.nets:linear", "--checkpoint", str(weights)]
    base += ["--dataset", "mnist", "--attacks", "clean", "--test-subset", "20", "--quiet"]
    names = []
    for extra in ([], ["--mean", "0.5", "--std", "0.5"], []):
        res = runner.invoke(app, [*base, *extra, "--db", db])
        assert res.exit_code == 0, res.output
        names.append(res.output.split()[0])
    assert names[0] == names[2] != names[1] and names[1].startswith(names[0] + "-")


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("this ran",))


def test_files_that_are_not_plain_weights_are_refused(tmp_path) -> None:
    from bench.models.nets import linear

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.raises(ValueError, match="not a plain tensor file"):
        read_state(evil)
    with pytest.raises(ValueError, match="holds no state dict of tensors"):
        read_state(_save(tmp_path, [torch.zeros(2)]))
    state = linear().state_dict()
    wrapped = read_state(
        _save(tmp_path, {"state_dict": {f"module.{k}": v for k, v in state.items()}})
    )
    assert wrapped.keys() == state.keys()  # DataParallel prefixes and the usual wrapper undone


class Normalised(torch.nn.Module):
    """A network that expects (x * 255 - 127.5) / 64, declared on the class."""

    input_mean, input_std, input_scale = (127.5,), (64.0,), 255.0

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach())
        return x.flatten(1)[:, :10]


def test_the_declared_input_convention_goes_in_front_of_the_network() -> None:
    model = build(ModelDef(f"{__name__}:Normalised"))
    assert isinstance(model, InputAdapter)
    x = torch.rand(2, 1, 4, 4)
    model(x)
    assert torch.allclose(model.net.seen[-1], (x * 255 - 127.5) / 64)
    given = build(ModelDef(f"{__name__}:Normalised", mean=(0.5,), std=(0.25,), scale=1.0))
    given(x)  # the command line's --mean/--std/--input-scale win over the declared ones
    assert torch.allclose(given.net.seen[-1], (x - 0.5) / 0.25)
    with pytest.raises(ValueError, match="give both a mean and a std"):
        build(ModelDef("bench.models.nets:linear", mean=(0.5,)))


@requires_mnist
def test_the_readme_example_model_is_evaluated_from_outside_the_package(
    tmp_path, monkeypatch
) -> None:
    """examples/tiny_mnist.py: trained briefly, saved as a torch state_dict, evaluated with
    its declared normalisation; every attack stays in [0, 1] and the eps-ball (the attack
    base checks each batch), and robust <= clean."""
    monkeypatch.chdir(ROOT)
    from examples.tiny_mnist import train

    weights = tmp_path / "tiny.pt"
    train(str(weights), steps=60, width=8)
    db = str(tmp_path / "t.sqlite")
    own = ["eval", "--model-def", "examples.tiny_mnist:TinyNet", "--model-args", "width=8"]
    own += ["--checkpoint", str(weights), "--dataset", "mnist", "--test-subset", "200"]
    own += ["--db", db, "--quiet"]
    res = runner.invoke(app, [*own, "--attacks", "clean,fgsm,pgd20", "--eps", "0.1"])
    assert res.exit_code == 0, res.output
    run = res.output.split()[0]
    acc = {e: c / n for e, (n, c, _) in _masks(db, run).items()}
    assert acc["clean"] > 0.6 and acc["pgd20"] <= acc["fgsm"] <= acc["clean"]
    # the same model at MNIST's usual eps 0.3 (the run's): the audit and worst cases use
    # those numbers, never the eps-0.1 ones (a number at another budget stands alone)
    for eps in ([], ["--eps", "0.05"]):  # the newest evaluation is off the run's budget
        res = runner.invoke(app, [*own, "--attacks", "pgd20", *eps])
        assert res.exit_code == 0, res.output
    with Session(bdb.connect(db)) as s:
        by_eps = {
            e.attack_params["eps"]: e.correct
            for e in bdb.find_run(s, run).evaluations
            if e.attack == "pgd20"
        }
        mask, _, missing = worst_case(s, run, "best", ["pgd20"])
    assert set(by_eps) == {0.05, 0.1, 0.3} and by_eps[0.3] < by_eps[0.1] < by_eps[0.05]
    assert mask is not None and not missing and int(mask.sum()) == by_eps[0.3]
