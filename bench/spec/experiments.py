"""Named experiments: each of the paper's tables and figures as a list of jobs.

An experiment fixes the defenses (its *arms*), model, data set, training preset and
evaluation attacks of one table or figure; :func:`expand` turns it, with the user's
overrides, into specs (via ``bench.spec.run.resolve``, so the usual precedence holds:
defense defaults < preset < overrides). Running an experiment is ``bench.jobs.train_job``
and ``bench.jobs.eval_job`` over those specs, which skip finished work, so running it again
continues where it stopped. The same overrides name the same runs, which is how
``bench plot`` and ``bench table`` find an experiment's results.

Overrides make every experiment runnable small on a CPU, e.g.
``bench experiment fig2-lambda --model tiny-cnn --dataset mnist --train-subset 256
--test-subset 64 --epochs 1``. When the data set is overridden to another family
(CIFAR-10 -> MNIST) and no preset is given, the data set's default preset is used, so
that eps and step sizes stay meaningful for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.core.constants import DEFAULT_ATTACKS, TABLE4_ATTACKS
from bench.core.paper import FAMILY
from bench.core.registry import Registry
from bench.spec.auxiliary import attach_unlabelled, labeller_spec
from bench.spec.presets import default_preset
from bench.spec.run import RunSpec, resolve

TABLE2_ATTACKS = DEFAULT_ATTACKS
FIG2_LAMBDAS = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 50.0)  # Fig. 2(d): lambda in [1/2, 50]
FIG2_FRACTIONS = (0.2, 0.4, 0.6, 0.8)  # Fig. 2(c); MART itself is the 100% point
# Unlabelled data when none is given: held-out MNIST training images (labels dropped)
# for small offline runs. CIFAR-10 has no default: the paper's 100K/500K Tiny Images
# subsets are not shipped, so table5-semi on CIFAR-10 needs --unlabelled.
DEFAULT_UNLABELLED = {"mnist": "heldout:mnist:10000:17000"}


@dataclass(frozen=True)
class Arm:
    """One line of a table or one curve of a figure."""

    defense: str
    params: tuple[tuple[str, Any], ...] = ()  # defense overrides, e.g. (("lam", 2.0),)
    label: str = ""
    panel: str = ""  # figure panel ("a", "b", "c", "d"); empty for tables

    @property
    def title(self) -> str:
        return self.label or self.defense


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    source: str
    model: str
    dataset: str
    preset: str
    arms: tuple[Arm, ...]
    attacks: tuple[str, ...]
    kind: str = "table"  # table2 | table4 | table5 | figure-epochs | figure-lambda
    semi: bool = False


@dataclass(frozen=True)
class Overrides:
    """What the CLI may change; None keeps the experiment's own setting."""

    model: str | None = None
    dataset: str | None = None
    preset: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    train_steps: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    monitor_subset: int | None = None
    val_subset: int | None = None
    seed: int = 0
    seeds: tuple[int, ...] = ()  # several seeds: one run of every arm per seed
    unlabelled: str | None = None
    only: tuple[str, ...] = ()  # keep only these defenses
    precision: str = "fp32"  # training arithmetic (part of each run's spec)


@dataclass(frozen=True)
class Job:
    """One run to train and the attacks to evaluate it with: what executors place."""

    spec: RunSpec
    attacks: tuple[str, ...]
    arms: tuple[Arm, ...] = field(default_factory=tuple)
    role: str = "run"  # run | pseudo-labeller
    # attack options per preset (EvalSpec.options), e.g. (("autoattack", (("n_iter", 10),)),)
    options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    skip_wrong: bool = True

    def attack_options(self) -> dict[str, dict[str, Any]]:
        return {attack: dict(opts) for attack, opts in self.options}


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def _arms(*names: str, panel: str = "") -> tuple[Arm, ...]:
    return tuple(Arm(n, panel=panel) for n in names)


for _e in (
    Experiment(
        "table2-mnist",
        "Table 2, MNIST: five defenses on SmallCNN, white-box",
        "MART paper §4.2, Table 2",
        "smallcnn",
        "mnist",
        "paper-4.2-mnist",
        _arms("standard", "mma", "dynamic", "trades", "mart"),
        TABLE2_ATTACKS,
        kind="table2",
    ),
    Experiment(
        "table2-cifar10",
        "Table 2, CIFAR-10: five defenses on ResNet-18 (--dataset cifar10-jpeg offline)",
        "MART paper §4.2, Table 2",
        "resnet18",
        "cifar10",
        "paper-4.2-cifar",
        _arms("standard", "mma", "dynamic", "trades", "mart"),
        TABLE2_ATTACKS,
        kind="table2",
    ),
    Experiment(
        "table4-wrn",
        "Table 4: WRN-34-10, best and last checkpoints, with PGD-100",
        "MART paper §4.3, Table 4; official MART WRN script",
        "wrn-34-10",
        "cifar10",
        "mart-code-wrn",
        _arms("standard", "dynamic", "trades", "mart"),
        TABLE4_ATTACKS,
        kind="table4",
    ),
    Experiment(
        "table5-semi",
        "Table 5: UAT++, RST and MART with unlabelled data (WRN-34-8 + 100K; "
        "--model wrn-28-10 for the 500K column)",
        "MART paper §3.3 and §4.3, Table 5",
        "wrn-34-8",
        "cifar10",
        "mart-code-wrn",
        _arms("uat++", "rst", "mart-semi"),
        ("clean", "pgd20"),
        kind="table5",
        semi=True,
    ),
    Experiment(
        "fig2-ablation",
        "Figure 2(a-c): MART's components removed, replaced, and applied to a fraction",
        "MART paper §4.1, Figure 2",
        "resnet18",
        "cifar10",
        "paper-4.1",
        (
            *_arms("mart", "mart-no-kl", "mart-no-weight", "mart-no-kl-no-weight", panel="a"),
            *_arms("mart", "mart-ce", "mart-bce-nat", "mart-kl-inner", panel="b"),
            *(Arm("mart-frac", (("fraction", f),), f"{100 * f:.0f}%", "c") for f in FIG2_FRACTIONS),
            Arm("mart", (), "100% (MART)", "c"),
        ),
        ("clean", "pgd20"),
        kind="figure-epochs",
    ),
    Experiment(
        "fig2-lambda",
        "Figure 2(d): robustness of MART and TRADES against lambda",
        "MART paper §4.1, Figure 2(d)",
        "resnet18",
        "cifar10",
        "paper-4.1",
        (
            *(Arm("mart", (("lam", v),), f"MART lam={v:g}", "d") for v in FIG2_LAMBDAS),
            *(Arm("trades", (("beta", v),), f"TRADES beta={v:g}", "d") for v in FIG2_LAMBDAS),
        ),
        ("clean", "pgd20"),
        kind="figure-lambda",
    ),
):
    EXPERIMENTS.add(_e.name, _e)


def settings(exp: Experiment, ov: Overrides) -> tuple[str, str, str]:
    """(model, dataset, preset) after overrides."""
    dataset = ov.dataset or exp.dataset
    preset = ov.preset
    if preset is None:
        same_family = FAMILY.get(dataset, dataset) == FAMILY.get(exp.dataset, exp.dataset)
        preset = exp.preset if same_family else default_preset(dataset)
    return ov.model or exp.model, dataset, preset


def expand(name: str, ov: Overrides | None = None, data_root: str | None = None) -> list[Job]:
    """All jobs of an experiment, one per distinct spec (shared runs listed once).

    Semi-supervised experiments list each pseudo-labeller (a natural run) before the
    runs it labels for.
    """
    exp = EXPERIMENTS.get(name)
    ov = ov or Overrides()
    model, dataset, preset = settings(exp, ov)
    arms = [a for a in exp.arms if not ov.only or a.defense in ov.only]
    if not arms:
        valid = ", ".join(sorted({a.defense for a in exp.arms}))
        raise ValueError(f"--only {','.join(ov.only)} keeps no arm of {name}; valid: {valid}")
    if ov.unlabelled is not None and not exp.semi:
        raise ValueError(f"{name} is supervised: --unlabelled applies to table5-semi only")
    unlabelled = ov.unlabelled or DEFAULT_UNLABELLED.get(dataset)
    if exp.semi and unlabelled is None:
        raise ValueError(
            f"{name} on {dataset} needs --unlabelled (a folder, .npy/.pt, or "
            "heldout:DATASET:START:STOP): the paper's Tiny Images subsets are not shipped"
        )
    out: dict[str, Job] = {}
    for arm, seed in ((a, s) for s in (ov.seeds or (ov.seed,)) for a in arms):
        spec = resolve(
            arm.defense,
            model,
            dataset,
            preset,
            seed=seed,
            train_subset=ov.train_subset,
            test_subset=ov.test_subset,
            monitor_subset=ov.monitor_subset,
            val_subset=ov.val_subset,
            precision=ov.precision,
            overrides={
                "epochs": ov.epochs,
                "batch_size": ov.batch_size,
                "lr": ov.lr,
                "steps": ov.train_steps,
            },
            defense_overrides=dict(arm.params),
        )
        if exp.semi:
            assert unlabelled is not None
            spec = attach_unlabelled(spec, unlabelled, data_root)
            labeller = labeller_spec(spec)
            out.setdefault(labeller.key, Job(labeller, (), (), "pseudo-labeller"))
        prev = out.get(spec.key)
        arms_here = (*(prev.arms if prev else ()), arm)
        out[spec.key] = Job(spec, exp.attacks, arms_here)
    return list(out.values())
