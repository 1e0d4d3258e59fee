"""The speed levers keep the method: precision, memory format, compile, on CPU and CUDA.

Tests marked ``gpu`` run the same paths on a CUDA device and are skipped without one.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from typer.testing import CliRunner

from bench.cli import app
from bench.spec.run import resolve
from bench.train import precision
from bench.train.loop import EpochReport, train
from bench.train.runtime import Runtime

HAS_CUDA = torch.cuda.is_available()
gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")


def _run(tmp_path: Path, prec: str, runtime: Runtime, device: str = "cpu", defense="mart"):
    spec = resolve(
        defense,
        "tiny-cnn",
        "mnist",
        "demo-mnist",
        train_subset=128,
        test_subset=32,
        overrides={"epochs": 1, "steps": 2},
        precision=prec,
    )
    reports: list[EpochReport] = []
    model = train(
        spec, tmp_path, device=device, on_epoch=reports.append, progress=False, runtime=runtime
    )
    return spec, model, reports[0]


@requires_mnist
@pytest.mark.parametrize("defense", ["mart", "trades"])
def test_bf16_training_runs_on_cpu_and_is_named(defense, tmp_path: Path) -> None:
    spec, model, rep = _run(tmp_path, "bf16", Runtime(), defense=defense)
    assert "-bf16-" in spec.name and spec.to_dict()["precision"] == "bf16"
    assert math.isfinite(rep.train_loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


def test_fp32_specs_keep_their_old_keys() -> None:
    spec = resolve("mart", "smallcnn", "mnist")
    assert "precision" not in spec.to_dict()
    assert resolve("mart", "smallcnn", "mnist", precision="bf16").key != spec.key


def test_float_logits_keep_probabilities_at_most_one() -> None:
    """In bf16 a softmax near 1 rounds above 1; the wrapper hands the losses fp32 logits."""
    logits = torch.tensor([[12.0, 0.0, -3.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = torch.softmax(logits.bfloat16(), dim=1)
        wrapped = precision.FloatLogits(torch.nn.Identity())(logits.bfloat16())
        safe = torch.softmax(wrapped, dim=1)
    assert wrapped.dtype == torch.float32
    assert float(safe.max()) <= 1.0 and float(low.max()) >= float(safe.max())


def test_fp16_needs_cuda_and_says_so(tmp_path: Path) -> None:
    if HAS_CUDA:
        pytest.skip("this machine has CUDA")
    args = ["run", "--defense", "mart", "--model", "tiny-cnn", "--precision", "fp16"]
    res = CliRunner().invoke(app, [*args, "--no-eval", "--db", str(tmp_path / "f.sqlite")])
    assert res.exit_code == 2 and "fp16 training needs a CUDA device" in res.output


@requires_mnist
def test_channels_last_changes_speed_not_the_method(tmp_path: Path) -> None:
    _, a, ra = _run(tmp_path / "a", "fp32", Runtime(channels_last=True))
    _, b, rb = _run(tmp_path / "b", "fp32", Runtime(channels_last=False))
    assert abs(ra.train_loss - rb.train_loss) < 1e-3
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-4)


def test_runtime_is_recorded() -> None:
    torch.set_num_threads(2)
    rec = Runtime(threads=1).record()  # before apply(): says what apply() will set
    assert rec["channels_last"] is True and rec["threads"] == 1 and rec["cores"] >= 1
    assert rec["torch_threads"] == 1 and rec["cpu_capability"] and "onednn" in rec


def test_default_threads_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run trained on the way (a transfer surrogate) took every core although the user
    had pinned the process to one thread: OMP_NUM_THREADS is the default now."""
    monkeypatch.setattr("bench.train.runtime.usable_cores", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert Runtime().n_threads() == 1 and Runtime(threads=3).n_threads() == 3
    for unset in ("", "0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert Runtime().n_threads() == 8 and Runtime(nproc=2).n_threads() == 4
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert Runtime(nproc=4).n_threads() == 2


@gpu
@requires_mnist
@pytest.mark.parametrize("prec", ["fp32", "bf16", "fp16"])
def test_cuda_training_paths(prec: str, tmp_path: Path) -> None:
    _, model, rep = _run(tmp_path, prec, Runtime(), device="cuda")
    assert math.isfinite(rep.train_loss) and next(model.parameters()).is_cuda


@gpu
@requires_mnist
def test_cuda_compile(tmp_path: Path) -> None:
    _, _, rep = _run(tmp_path, "bf16", Runtime(compile=True), device="cuda")
    assert math.isfinite(rep.train_loss)
