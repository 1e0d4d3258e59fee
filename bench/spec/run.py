"""Run specs: what the user asked for, fully resolved, frozen and serialisable.

A spec is resolved once (defense defaults < preset < CLI overrides) and then only read.
Its JSON is the run's identity: the same spec is never trained twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import defenses
from attacks.l2 import L2_EPS
from bench.core.constants import LINF, MAX_L2_EPS, NORMS, run_norm
from bench.core.lazy import LazyModule, torch
from bench.core.paper import FAMILY
from bench.data import DATASETS
from bench.models import MODELS, build_model
from bench.spec.presets import TRAIN_PRESETS, TrainPreset, default_preset
from defenses.base import PGDDefense

transforms = LazyModule("bench.models.transforms")  # PyTorch: loaded with the first model

if TYPE_CHECKING:
    from torch import nn

ATTACK_OVERRIDES = ("steps", "step_size", "start")  # the inner attack: --train-steps ...
SEMI_FIELDS = ("unlabelled", "n_unlabelled", "pseudo_labeller")
PRECISIONS = ("fp32", "bf16", "fp16")  # training arithmetic (autocast); evaluation stays fp32


@dataclass(frozen=True)
class RunSpec:
    defense: str
    model: str
    dataset: str
    preset: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    lr_gamma: float
    eps: float
    defense_params: tuple[tuple[str, Any], ...]
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None
    # Semi-supervised runs only (bench/data/unlabelled.py): where the extra unlabelled images come
    # from, how many, and the name of the natural run whose predictions label them.
    unlabelled: str | None = None
    n_unlabelled: int | None = None
    pseudo_labeller: str | None = None
    # Training arithmetic: fp32, or autocast to bf16/fp16 (bench/train/precision.py).
    precision: str = "fp32"
    # The per-epoch monitor (best checkpoint) on the first N of the test points; None: all.
    monitor_subset: int | None = None
    # The last N of the training images held out of training: the "best-val" checkpoint
    # is chosen on them (bench/train/selection.py); None: no held-out set.
    val_subset: int | None = None
    # The threat model it trains in (and is monitored and, by default, evaluated in).
    norm: str = LINF

    def __post_init__(self) -> None:
        check_seed(self.seed)
        check_eps(self.eps, self.norm)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}"
            )
        m, t = self.monitor_subset, self.test_subset
        if m is not None and (m < 1 or (t is not None and m > t)):
            raise ValueError(f"the monitor subset must be 1..{t or 'all'} test points, got {m}")
        v, n = self.val_subset, self.train_subset
        if v is not None and (v < 1 or (n is not None and v >= n)):
            raise ValueError(
                f"--val-subset {v}: hold out at least 1 and fewer than the "
                f"{n if n is not None else 'all'} training images"
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["defense_params"] = dict(self.defense_params)
        for k in SEMI_FIELDS:  # unset: omitted, so older specs keep their keys and names
            if d[k] is None:
                del d[k]
        if d["precision"] == "fp32":  # the default: omitted for the same reason
            del d["precision"]
        for k in ("monitor_subset", "val_subset"):  # unset: omitted (older keys unchanged)
            if d[k] is None:
                del d[k]
        if d["norm"] == LINF:  # the default: omitted (older keys unchanged)
            del d["norm"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        d = dict(d)
        d["milestones"] = tuple(d["milestones"])
        d["defense_params"] = tuple(sorted(d["defense_params"].items()))
        return cls(**d)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def name(self) -> str:
        """Readable and unique: the main choices in words, the rest in a short hash."""
        parts = [self.dataset, self.model, self.defense, self.preset]
        if self.train_subset:
            parts.append(f"n{self.train_subset}")
        if self.val_subset:
            parts.append(f"v{self.val_subset}")
        if self.n_unlabelled:
            parts.append(f"u{self.n_unlabelled}")
        parts.append(f"e{self.epochs}")
        if self.precision != "fp32":
            parts.append(self.precision)
        if self.norm != LINF:
            parts.append(self.norm)
        parts.append(f"s{self.seed}")
        return "-".join(parts) + "-" + self.key[:6]

    def params(self) -> dict[str, Any]:
        return dict(self.defense_params)


def resolve(
    defense: str,
    model: str,
    dataset: str,
    preset: str | None = None,
    *,
    seed: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    overrides: dict[str, Any] | None = None,
    defense_overrides: dict[str, Any] | None = None,
    precision: str = "fp32",
    monitor_subset: int | None = None,
    val_subset: int | None = None,
) -> RunSpec:
    """Build a spec: defense defaults < preset < overrides.

    ``overrides`` may set epochs, batch_size, lr, momentum, weight_decay, milestones,
    lr_gamma, eps and the inner attack (steps, step_size, start); ``defense_overrides``
    sets the defense's own parameters (e.g. ``lam`` for MART, ``beta`` for TRADES).
    """
    MODELS.check(model)  # unknown names fail here, with the valid choices (no import)
    DATASETS.check(dataset)
    preset = preset or default_preset(dataset)
    p = TRAIN_PRESETS.get(preset)
    cls = defenses.DEFENSES.get(defense)
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    norm = over.pop("norm", LINF)
    if norm not in cls.norms:
        raise ValueError(f"{defense} does not train in {norm} (it takes: {', '.join(cls.norms)})")
    eps = check_eps(float(over.pop("eps", usual_eps(dataset, norm, p.eps))), norm)
    attack_over = {k: over.pop(k) for k in ATTACK_OVERRIDES if k in over}
    train = {
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "lr": p.lr,
        "momentum": p.momentum,
        "weight_decay": p.weight_decay,
        "milestones": tuple(p.milestones),
        "lr_gamma": p.lr_gamma,
    }
    unknown = set(over) - set(train)
    if unknown:
        raise ValueError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    train.update(over)
    train["milestones"] = tuple(int(m) for m in train["milestones"])
    _check_schedule(train)
    user = dict(defense_overrides or {})
    if norm != LINF and issubclass(cls, PGDDefense):
        user["norm"] = norm  # its inner attack: PGD in that norm
    params = _defense_params(cls, defense, (preset, p), eps, attack_over, user)
    return RunSpec(
        defense=defense,
        model=model,
        dataset=dataset,
        preset=preset,
        eps=eps,
        defense_params=tuple(sorted(params.items())),
        seed=seed,
        train_subset=train_subset,
        test_subset=test_subset,
        precision=precision,
        monitor_subset=monitor_subset,
        val_subset=val_subset,
        norm=norm,
        **train,
    )


def _check_schedule(train: dict[str, Any]) -> None:
    """Finite numbers, at least one epoch and one image a batch, milestones within reach."""
    for k in ("lr", "momentum", "weight_decay", "lr_gamma"):
        v = train[k]
        if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{k} must be a finite number >= 0, got {v}")
    for k in ("epochs", "batch_size"):
        if int(train[k]) != train[k] or train[k] < 1:
            raise ValueError(f"{k} must be a whole number >= 1, got {train[k]}")
    if any(m < 1 for m in train["milestones"]):
        raise ValueError(f"milestones are epochs >= 1, got {list(train['milestones'])}")


MAX_SEED = 2**63 - 1  # a signed 64-bit integer: what databases and torch.manual_seed store


def check_seed(seed: int) -> int:
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed is a whole number from 0 to 2**63 - 1, got {seed}")
    return seed


def check_eps(eps: float, norm: str = LINF) -> float:
    """An L-inf budget is in [0, 1] (images are in [0, 1]); an L2 one is up to ``MAX_L2_EPS``."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    top = 1.0 if norm == LINF else MAX_L2_EPS
    if not math.isfinite(eps) or not 0.0 <= eps <= top:
        what = "(images are in [0, 1])" if norm == LINF else "in L2"
        raise ValueError(f"eps must be a finite number in [0, {top:g}] {what}, got {eps}")
    return eps


def judged_eps(spec: dict[str, Any], dataset: str, norm: str) -> float:
    """The budget a stored run is judged at in ``norm`` (evaluated by default, audited,
    tabled): its own eps in its own norm, else that norm's usual budget for the data set."""
    if norm == run_norm(spec):
        return float(spec["eps"])
    return usual_eps(dataset, norm, DATASETS.get(dataset).eps)


def usual_eps(dataset: str, norm: str, linf_eps: float) -> float:
    """A run's budget when none is given: the preset's in L-inf; in L2 the data set's usual
    one (attacks/l2.py ``L2_EPS``: MNIST 2.0, CIFAR-10 0.5)."""
    if norm == LINF:
        return linf_eps
    family = FAMILY.get(dataset, dataset)
    if family not in L2_EPS:
        raise ValueError(f"no usual L2 budget for {dataset}: pass --eps")
    return L2_EPS[family]


def _defense_params(
    cls: type[defenses.Defense],
    defense: str,
    named: tuple[str, TrainPreset],
    eps: float,
    attack_over: dict[str, Any],
    user: dict[str, Any],
) -> dict[str, Any]:
    """Defense defaults < the preset's inner attack < the preset's values < the defense's
    own values for this preset (``preset_params``) < overrides.

    An override the defense has no field for is an error naming the fields it has, so a
    setting is never dropped silently (e.g. ``--start`` on a defense without PGD).
    """
    name, p = named
    fields = {f.name for f in dataclasses.fields(cls)}
    if "eps" in user:
        raise ValueError("set the budget with --eps (it is used for training and evaluation)")
    params: dict[str, Any] = {}
    if issubclass(cls, PGDDefense):
        params.update(p.attack_params(eps))
    # A variant (e.g. mart-no-kl, a subclass of Mart) takes its parent's preset values.
    for klass in cls.__mro__:
        preset_params = p.defense_params.get(getattr(klass, "name", ""))
        if preset_params is not None:
            params.update({k: v for k, v in preset_params.items() if k in fields})
            break
    own = {**cls.preset_params.get("*", {}), **cls.preset_params.get(name, {})}
    if "step_fraction" in own:
        own["step_size"] = eps * own.pop("step_fraction")
    params.update(own)
    for k, v in attack_over.items():
        if k in user and user[k] != v:
            raise ValueError(f"{k} is given twice with different values ({v} and {user[k]})")
        user[k] = v
    for k, v in user.items():
        if k not in fields:
            raise ValueError(
                f"defense {defense!r} has no parameter {k!r}; it takes: {', '.join(sorted(fields))}"
            )
        params[k] = v
    # Fill the defense's own defaults (and check types and ranges) so the spec is complete.
    return cls(**params).params()


def build_for_spec(spec: RunSpec) -> nn.Module:
    """The spec's architecture, freshly initialised from its seed; behind the defense's
    input encoding if it has one (``Defense.encoding``: then the network takes its
    channels)."""
    info = DATASETS.get(spec.dataset)
    encoding = defenses.build(spec.defense, **spec.params()).encoding()
    channels = info.shape[0] * (encoding.expands if encoding is not None else 1)
    torch.manual_seed(spec.seed)
    net = build_model(spec.model, num_classes=info.num_classes, in_channels=channels)
    return net if encoding is None else transforms.Transformed(net, encoding)
