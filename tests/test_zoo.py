"""RobustBench interoperability offline: a zoo entry from a local checkpoint file, evaluated
through our attack loop into the DB (an external run), and our own checkpoints loaded back
as plain modules with ``bench.load_model``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import bench
from bench import data as bdata
from bench.cli import app
from bench.jobs import train as jobs_train
from bench.jobs import zoo
from bench.models import zoo as zoo_models
from bench.report.frames import paper_frame
from bench.spec.run import build_for_spec, resolve
from bench.store import db as bdb
from bench.store.checkpoints import save_weights

ZOO_NAME = "Ding2020MMA"  # WRN-28-4 with per-image standardisation: ~5.8M parameters


def _cifar_jpeg_available() -> bool:
    try:
        bdata.load_split("cifar10-jpeg", False)
    except bdata.DataNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _cifar_jpeg_available(), reason="cifar10-jpeg not found")
def test_zoo_entry_from_local_file_is_an_external_run(tmp_path: Path, monkeypatch) -> None:
    torch.manual_seed(0)
    arch = zoo_models._robustbench()[1][ZOO_NAME]["model"]()  # RobustBench's own class, fresh
    file = tmp_path / "mma.pt"
    torch.save(arch.state_dict(), file)
    engine = bdb.connect(tmp_path / "z.sqlite")
    run, evs = zoo.zoo_eval(
        engine,
        ZOO_NAME,
        attack_names=["clean", "fgsm"],
        checkpoint_file=str(file),
        dataset="cifar10-jpeg",
        test_subset=4,
        progress=False,
    )
    assert [e.attack for e in evs] == ["clean", "fgsm"] and all(e.n == 4 for e in evs)
    # Our loop gives what the loaded module predicts (RobustBench's loader, same weights).
    x, y = bdata.subset(*bdata.load_split("cifar10-jpeg", False), 4)
    with torch.no_grad():
        pred = arch.eval()(x.float() / 255).argmax(1)
    assert evs[0].correct == int((pred == y).sum())
    with Session(engine) as s:
        row = bdb.find_run(s, run)
        assert row.defense == "zoo" and row.model == ZOO_NAME and row.spec["kind"] == "external"
        assert row.spec["checkpoint_sha256"] == row.checkpoints[0].sha256
        flags = {f.check: f.status for f in s.query(bdb.AuditFlag).filter_by(run_id=row.id)}
    assert flags["zero-gradients"] in ("ok", "flag") and flags["spsa-not-below-pgd"] == (
        "not-evaluated"
    )
    # Asked again: nothing is recomputed.
    _, again = zoo.zoo_eval(
        engine,
        ZOO_NAME,
        attack_names=["clean"],
        checkpoint_file=str(file),
        dataset="cifar10-jpeg",
        test_subset=4,
        progress=False,
    )
    assert again[0].id == evs[0].id
    frame = paper_frame(engine, 2)  # the same tables work on external runs
    assert set(frame["run"]) == {run} and frame["attack"].tolist()[:2] == ["clean", "fgsm"]


def test_missing_checkpoint_offline_names_the_place(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(zoo_models.ZooCheckpointMissing) as err:
        zoo_models.download("Wang2020Improving", root=tmp_path)
    assert str(tmp_path / "cifar10" / "Linf" / "Wang2020Improving.pt") in str(err.value)
    res = CliRunner().invoke(
        app, ["zoo", "eval", "Wang2020Improvin", "--db", str(tmp_path / "x.sqlite")]
    )
    assert res.exit_code == 2 and "Did you mean 'Wang2020Improving'" in res.output


def test_zoo_ls_shows_published_numbers() -> None:
    res = CliRunner().invoke(app, ["zoo", "ls", "Wang2020"])
    assert res.exit_code == 0 and "Wang2020Improving" in res.output and "56.29" in res.output


@requires_mnist
def test_load_model_round_trip(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "m.sqlite"
    engine = bdb.connect(db)
    spec = resolve("natural", "tiny-cnn", "mnist", "demo-mnist", test_subset=8)
    model = torch.nn.Module()
    with Session(engine) as s:
        run = jobs_train.get_or_create_run(s, spec, tmp_path / "runs", None)
        model = build_for_spec(spec)
        torch.nn.init.normal_(model.net[0].weight)
        path = Path(run.run_dir) / "best.safetensors"
        save_weights(model, path, {"run": run.name, "epoch": "1", "robust_acc": "0.0"})
        jobs_train._sync_checkpoints(s, run, Path(run.run_dir))
        s.commit()
        name = run.name
    x = torch.rand(4, 1, 28, 28)
    want = model.eval()(x)
    for target in (name, path, path.parent):
        got = bench.load_model(target, "best", db=db)
        assert isinstance(got, torch.nn.Module) and not got.training
        assert torch.equal(got(x), want)
    with pytest.raises(LookupError, match="no 'last' checkpoint"):
        bench.load_model(name, "last", db=db)
    path.write_bytes(path.read_bytes()[:-1] + b" ")  # tampered file
    with pytest.raises(RuntimeError, match="changed since it was recorded"):
        bench.load_model(name, db=db)
