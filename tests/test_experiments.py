"""Named experiments: expansion, overrides, dry runs, and one figure end to end."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pytest
from conftest import requires_mnist
from sqlalchemy.orm import Session
from tests_helpers import synthetic_curves
from typer.testing import CliRunner

from bench.cli import app
from bench.core.paper import table5_value
from bench.report import plots
from bench.spec import experiments as bexp
from bench.spec.run import resolve
from bench.store import db as bdb

runner = CliRunner()
TINY = bexp.Overrides(
    model="tiny-cnn", dataset="mnist", epochs=1, train_subset=128, test_subset=32, train_steps=1
)


def defenses_of(jobs: list[bexp.Job]) -> list[str]:
    return [j.spec.defense for j in jobs if j.role == "run"]


def test_table_experiments_expand_to_the_papers_rows() -> None:
    t2 = bexp.expand("table2-mnist")
    assert defenses_of(t2) == ["standard", "mma", "dynamic", "trades", "mart"]
    assert {(j.spec.model, j.spec.dataset, j.spec.preset) for j in t2} == {
        ("smallcnn", "mnist", "paper-4.2-mnist")
    }
    assert all(j.attacks == ("clean", "fgsm", "pgd20", "cw20") for j in t2)
    assert t2[-1].spec.params()["lam"] == 5.0  # §4.2: MART lam 5, TRADES 4
    assert t2[3].spec.params()["beta"] == 4.0

    cifar = bexp.expand("table2-cifar10", bexp.Overrides(dataset="cifar10-jpeg", epochs=3))
    assert {j.spec.dataset for j in cifar} == {"cifar10-jpeg"}
    assert {j.spec.preset for j in cifar} == {"paper-4.2-cifar"}  # same family: preset kept
    assert {j.spec.epochs for j in cifar} == {3} and {j.spec.model for j in cifar} == {"resnet18"}

    t4 = bexp.expand("table4-wrn")
    assert defenses_of(t4) == ["standard", "dynamic", "trades", "mart"]
    assert "pgd100" in t4[0].attacks and t4[0].spec.model == "wrn-34-10"
    assert t4[0].spec.eps == 0.031 and t4[0].spec.params()["step_size"] == 0.007


def test_overrides_apply_and_switch_preset_with_the_data_family() -> None:
    jobs = bexp.expand("fig2-lambda", TINY)
    assert len(jobs) == 18
    for j in jobs:
        s = j.spec
        assert (s.model, s.dataset, s.epochs, s.train_subset, s.test_subset) == (
            "tiny-cnn",
            "mnist",
            1,
            128,
            32,
        )
        assert s.preset == "paper-4.2-mnist" and s.params()["steps"] == 1 and s.eps == 0.3
    lams = [j.spec.params()["lam"] for j in jobs if j.spec.defense == "mart"]
    betas = [j.spec.params()["beta"] for j in jobs if j.spec.defense == "trades"]
    assert lams == betas == list(bexp.FIG2_LAMBDAS)
    only = bexp.expand("fig2-lambda", bexp.Overrides(only=("trades",)))
    assert defenses_of(only) == ["trades"] * 9 and only[0].spec.preset == "paper-4.1"
    with pytest.raises(ValueError, match="keeps no arm"):
        bexp.expand("fig2-lambda", bexp.Overrides(only=("standard",)))
    with pytest.raises(ValueError, match="supervised"):
        bexp.expand("fig2-lambda", bexp.Overrides(unlabelled="heldout:mnist:10000:17000"))


def test_ablation_shares_the_mart_run_across_panels_and_with_fig2d() -> None:
    jobs = bexp.expand("fig2-ablation")
    names = defenses_of(jobs)
    for d in ("mart-no-kl", "mart-no-weight", "mart-no-kl-no-weight", "mart-ce"):
        assert d in names
    for d in ("mart-bce-nat", "mart-kl-inner"):
        assert d in names
    assert names.count("mart") == 1 and names.count("mart-frac") == 4
    assert len(jobs) == 1 + 3 + 3 + 4
    mart = next(j for j in jobs if j.spec.defense == "mart")
    assert sorted(a.panel for a in mart.arms) == ["a", "b", "c"]
    fracs = [j.spec.params()["fraction"] for j in jobs if j.spec.defense == "mart-frac"]
    assert fracs == list(bexp.FIG2_FRACTIONS)
    # MART at lam 6 in Fig. 2(d) is the same run as MART in Fig. 2(a-c): trained once.
    lam6 = next(j for j in bexp.expand("fig2-lambda") if j.arms[0].title == "MART lam=6")
    assert lam6.spec.key == mart.spec.key == resolve("mart", "resnet18", "cifar10", "paper-4.1").key


@requires_mnist
def test_semi_experiment_lists_its_pseudo_labeller_first() -> None:
    jobs = bexp.expand("table5-semi", TINY)
    assert [j.role for j in jobs] == ["pseudo-labeller", "run", "run", "run"]
    assert defenses_of(jobs) == ["uat++", "rst", "mart-semi"]
    labeller = jobs[0].spec
    assert labeller.defense == "natural" and jobs[0].attacks == ()
    assert all(j.spec.pseudo_labeller == labeller.name for j in jobs[1:])
    assert all(j.spec.unlabelled == "heldout:mnist:10000:17000" for j in jobs[1:])
    assert all(j.spec.n_unlabelled == 7000 for j in jobs[1:])
    with pytest.raises(ValueError, match="needs --unlabelled"):
        bexp.expand("table5-semi")
    assert table5_value("cifar10", "wrn-34-8", "mart-semi", "pgd20", 8 / 255) == 61.88
    assert table5_value("cifar10", "wrn-28-10", "rst", "clean", 0.031) == 89.70
    assert table5_value("mnist", "wrn-34-8", "mart-semi", "pgd20", 0.3) is None
    assert table5_value("cifar10", "wrn-34-8", "rst", "pgd20", 0.1) is None


def test_cli_lists_experiments_and_rejects_unknown_ones(tmp_path: Path) -> None:
    res = runner.invoke(app, ["ls", "experiments"])
    assert res.exit_code == 0
    for name in ("table2-mnist", "table2-cifar10", "table4-wrn", "table5-semi", "fig2-ablation"):
        assert name in res.output
    res = runner.invoke(app, ["experiment", "fig2-lambd", "--db", str(tmp_path / "x.sqlite")])
    assert res.exit_code == 2 and "Did you mean 'fig2-lambda'" in res.output
    res = runner.invoke(app, ["plot", "table2-mnist", "--db", str(tmp_path / "x.sqlite")])
    assert res.exit_code == 2


def test_ablation_plot_renders_from_the_database(tmp_path: Path) -> None:
    engine = bdb.connect(tmp_path / "p.sqlite")
    jobs = bexp.expand("fig2-ablation", TINY)
    synthetic_curves(engine, jobs)
    png = plots.plot_experiment(engine, "fig2-ablation", jobs, tmp_path / "plots")
    img = mpimg.imread(png)
    assert img.shape[1] > 3 * img.shape[0] / 2 and img.std() > 0.05  # three panels, not blank
    text = png.with_suffix(".txt").read_text()
    for needle in ("partial copy", "preset paper-4.2-mnist", "1 epoch,", "128", "first 32 test"):
        assert needle in text
    assert "missing" not in text
    curves = plots.epoch_frame(engine, [jobs[0].spec.name])
    assert curves["robust_acc"].round(6).tolist() == [10.0, 20.0, 30.0]


def test_lambda_plot_renders_from_the_database(tmp_path: Path) -> None:
    engine = bdb.connect(tmp_path / "p.sqlite")
    jobs = bexp.expand("fig2-lambda", TINY)
    synthetic_curves(engine, jobs[:-1])  # the last run (TRADES beta=50) never ran
    png = plots.plot_experiment(engine, "fig2-lambda", jobs, tmp_path / "plots")
    assert mpimg.imread(png).std() > 0.05
    text = png.with_suffix(".txt").read_text()
    assert "1 run(s) missing or unfinished" in text and jobs[-1].spec.name in text


@requires_mnist
def test_fig2_ablation_end_to_end_through_the_cli(tmp_path: Path) -> None:
    """Two arms (MART, no KL) at tiny scale: train, evaluate, plot; then nothing redone."""
    common = [
        "--model",
        "tiny-cnn",
        "--dataset",
        "mnist",
        "--train-subset",
        "128",
        "--test-subset",
        "32",
        "--epochs",
        "1",
        "--train-steps",
        "1",
        "--batch-size",
        "64",
        "--only",
        "mart,mart-no-kl",
        "--db",
        str(tmp_path / "e.sqlite"),
    ]
    dry = runner.invoke(app, ["experiment", "fig2-ablation", *common, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("missing") == 2 and "preset paper-4.2-mnist" in dry.output
    plot_dir = tmp_path / "plots"
    res = runner.invoke(
        app,
        [
            "experiment",
            "fig2-ablation",
            *common,
            "--runs-dir",
            str(tmp_path / "runs"),
            "--plot-dir",
            str(plot_dir),
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    png = plot_dir / "fig2-ablation.png"
    assert png.exists() and png.stat().st_size > 20_000
    assert mpimg.imread(png).std() > 0.05
    caption = png.with_suffix(".txt").read_text()
    assert "preset paper-4.2-mnist" in caption and "1 epoch," in caption
    assert "missing" not in caption
    again = runner.invoke(app, ["experiment", "fig2-ablation", *common, "--dry-run"])
    assert again.output.count("done ") == 2 and again.output.count("evals 4/4") == 2
    assert again.output.count(" 1/1 epochs") == 2
    out2 = tmp_path / "again"
    res = runner.invoke(app, ["plot", "fig2-ablation", *common, "--out", str(out2)])
    assert res.exit_code == 0, res.output
    assert (out2 / "fig2-ablation.png").stat().st_size > 20_000


def test_precision_override_names_the_same_runs_as_bench_run(tmp_path: Path) -> None:
    """`bench experiment --precision bf16` trains the very specs `bench run --precision bf16`
    would (same keys), and the dry run lists them by those names."""
    jobs = bexp.expand("table2-mnist", bexp.Overrides(precision="bf16", monitor_subset=1000))
    assert {j.spec.precision for j in jobs} == {"bf16"}
    mart = next(j.spec for j in jobs if j.spec.defense == "mart")
    same = resolve("mart", "smallcnn", "mnist", precision="bf16", monitor_subset=1000)
    assert mart.key == same.key and "-bf16-" in mart.name
    res = runner.invoke(
        app,
        [
            "experiment",
            "table2-mnist",
            "--precision",
            "bf16",
            "--monitor-subset",
            "1000",
            "--dry-run",
            "--db",
            str(tmp_path / "x.sqlite"),
        ],
    )
    assert res.exit_code == 0 and mart.name in res.output


def test_dry_run_estimates_the_training_left_from_stored_epochs(tmp_path: Path) -> None:
    db = str(tmp_path / "e.sqlite")
    jobs = bexp.expand("table2-mnist", bexp.Overrides(precision="bf16", monitor_subset=1000))
    mart = next(j.spec for j in jobs if j.spec.defense == "mart")
    engine = bdb.connect(db)
    with Session(engine) as s:
        run = bdb.Run(
            key=mart.key,
            name=mart.name,
            defense="mart",
            model=mart.model,
            dataset="mnist",
            preset=mart.preset,
            spec=mart.to_dict(),
            seed=0,
            run_dir="x",
            data_label="mnist",
            status="interrupted",
            epochs_done=2,
        )
        s.add(run)
        s.flush()
        for e in (1, 2):
            metric = bdb.EpochMetric(
                run_id=run.id,
                epoch=e,
                lr=0.01,
                train_loss=2.3,
                clean_acc=0.1,
                robust_acc=0.1,
                n_monitor=1000,
                monitor_attack={},
                seconds=72.0,
            )
            s.add(metric)
        s.commit()
    args = ["experiment", "table2-mnist", "--precision", "bf16", "--monitor-subset", "1000"]
    out = runner.invoke(app, [*args, "--dry-run", "--db", db]).output
    line = next(ln for ln in out.splitlines() if mart.name in ln)
    assert (
        "(about 0.96 h" not in line and "about 1.0 h of training left, from its own epochs" in line
    )
    trades = next(ln for ln in out.splitlines() if "-trades-" in ln)
    assert "training left" not in trades  # another defense: nothing comparable timed
