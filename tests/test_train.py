"""The training loop: every defense trains, and an interrupted run resumes exactly."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from conftest import requires_mnist

import defenses
from bench.core.constants import TEACHER_FILE
from bench.spec.auxiliary import teacher_spec
from bench.spec.run import resolve
from bench.store.checkpoints import load_state
from bench.train.loop import Interrupted, train

pytestmark = requires_mnist


def tiny_spec(defense: str, epochs: int = 2, **over):
    # Two inner-attack steps where the defense has an inner attack: resolve() refuses a
    # setting the defense has no field for (natural, clp).
    fields = {f.name for f in dataclasses.fields(defenses.DEFENSES.get(defense))}
    steps = {"steps": 2} if "steps" in fields else {}
    # Distillation at T = 10: at the paper's 100 a few tiny epochs leave the teacher at
    # chance (defenses/distillation.py), and a student of a chance teacher learns nothing.
    temperature = {"temperature": 10} if "temperature" in fields else {}
    return resolve(
        defense,
        "tiny-cnn",
        "mnist",
        "paper-4.2-mnist",
        train_subset=256,
        test_subset=64,
        overrides={"epochs": epochs, "batch_size": 64, **steps, **over},
        defense_overrides=temperature,
    )


@pytest.mark.parametrize("name", defenses.DEFENSES.names())
def test_every_defense_trains_and_lowers_its_loss(name: str, tmp_path: Path) -> None:
    spec = tiny_spec(name, epochs=4, lr=0.05)
    teacher = teacher_spec(spec)
    if teacher is not None:  # as bench/jobs/teacher.py does: trained first, then copied
        train(teacher, tmp_path / "teacher", progress=False)
        shutil.copyfile(tmp_path / "teacher" / "last.safetensors", tmp_path / TEACHER_FILE)
    reports = []
    train(spec, tmp_path, on_epoch=reports.append, progress=False)
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert reports[-1].train_loss < reports[0].train_loss
    assert all(0.0 <= r.robust_acc <= r.clean_acc + 1e-9 or r.n_monitor == 0 for r in reports)
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "last.safetensors").exists()


def test_resume_continues_after_last_completed_epoch(tmp_path: Path) -> None:
    spec = tiny_spec("mart", epochs=3)
    straight: list = []
    model_a = train(spec, tmp_path / "a", on_epoch=straight.append, progress=False)

    first: list = []
    with pytest.raises(Interrupted):
        train(spec, tmp_path / "b", on_epoch=first.append, progress=False, stop_after=1)
    assert load_state(tmp_path / "b" / "state.pt")["epoch"] == 1
    second: list = []
    model_b = train(spec, tmp_path / "b", on_epoch=second.append, progress=False)

    assert [r.epoch for r in first] == [1]
    # Epoch 1 is replayed from the saved history (not retrained), then 2 and 3 run.
    assert [r.epoch for r in second] == [1, 2, 3]
    assert second[0] == first[0]
    for pa, pb in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb)
    assert [r.robust_acc for r in second] == [r.robust_acc for r in straight]


def test_finished_run_trains_nothing(tmp_path: Path) -> None:
    spec = tiny_spec("natural", epochs=1)
    train(spec, tmp_path, progress=False)
    mtime = (tmp_path / "state.pt").stat().st_mtime_ns
    train(spec, tmp_path, progress=False)
    assert (tmp_path / "state.pt").stat().st_mtime_ns == mtime


def test_spec_resolution_precedence() -> None:
    spec = resolve("mart", "smallcnn", "mnist", "paper-4.2-mnist", defense_overrides={"lam": 7})
    p = spec.params()
    assert p["lam"] == 7  # CLI over preset (5) over the class default (6)
    assert p["eps"] == 0.3 and p["step_size"] == pytest.approx(0.075) and p["start"] == "uniform"
    code = resolve("mart", "wrn-34-10", "cifar10", "mart-code-wrn")
    assert code.params()["step_size"] == 0.007 and code.params()["start"] == "normal"
    assert spec.key != code.key and spec.name.startswith("mnist-smallcnn-mart-paper-4.2-mnist")
    # Variants inherit their parent's preset values (MART's lam 5 in paper-4.2).
    assert resolve("mart-no-kl", "smallcnn", "mnist", "paper-4.2-mnist").params()["lam"] == 5
    with pytest.raises(ValueError, match="no parameter 'beta'"):
        resolve("mart", "smallcnn", "mnist", defense_overrides={"beta": 1})


def test_monitor_subset_picks_best_on_the_first_points_only(tmp_path: Path) -> None:
    spec = dataclasses.replace(tiny_spec("standard", epochs=1), monitor_subset=16)
    reports: list = []
    train(spec, tmp_path, on_epoch=reports.append, progress=False)
    assert [r.n_monitor for r in reports] == [16]
    assert spec.to_dict()["monitor_subset"] == 16
    assert "monitor_subset" not in tiny_spec("standard").to_dict()  # old names unchanged
    with pytest.raises(ValueError, match="monitor subset"):
        dataclasses.replace(spec, monitor_subset=65)  # more than the 64 test points
