"""A model defined outside bench: ``PACKAGE.MODULE:CALLABLE`` and a weights file.

``bench eval --model-def my_pkg.nets:MyNet --model-args width=2 --checkpoint my.pt`` builds
``MyNet(width=2)``, loads the file's weights (``weights_only=True`` or safetensors: nothing
in the file can run code) and evaluates the result as an external run. The RobustBench zoo
is one case of this (``ZOO_TARGET`` below): its callable brings its own weight loader.

Attacks always work on images in [0, 1]. A model that expects normalised inputs, or
pixels in [0, 255], says so with ``mean``/``std``/``scale`` (``--mean``, ``--std``,
``--input-scale``) or by declaring them on the callable or the module it returns
(attributes ``input_mean``, ``input_std``, ``input_scale``); ``InputAdapter`` then puts
that step in front of the network, inside what the attacks differentiate, so the eps-ball
is measured in [0, 1] pixels whatever the network wants.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.core.files import check_file, load_tensors

ZOO_TARGET = "bench.models.zoo:zoo_architecture"
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net")


@dataclass(frozen=True)
class ModelDef:
    """How to build a model: the callable, its keyword arguments and its input convention."""

    target: str
    args: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float | None = None  # the network's input range is [0, scale]

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target, "args": dict(sorted(self.args.items()))}
        for key in ("mean", "std", "scale"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ModelDef:
        """The definition stored with an external run (a zoo run before model_def existed:
        its zoo name)."""
        d = spec.get("model_def")
        if d is None:
            return cls(ZOO_TARGET, {"name": spec["zoo_name"]})
        return cls(
            d["target"],
            dict(d.get("args", {})),
            _floats(d.get("mean")),
            _floats(d.get("std")),
            d.get("scale"),
        )

    @property
    def short_name(self) -> str:
        return self.target.rpartition(":")[2].rpartition(".")[2]


def _floats(values: list[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def import_callable(target: str) -> Callable[..., Any]:
    """``PACKAGE.MODULE:CALLABLE`` (the callable may be ``Class.method``), imported; the
    current folder is importable, as it is for ``python -m``."""
    module, colon, attr = target.partition(":")
    if not colon or not module or not attr:
        raise ValueError(f"--model-def {target!r}: expected PACKAGE.MODULE:CALLABLE")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"--model-def {target!r}: cannot import {module!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--model-def {target!r}: {module!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"--model-def {target!r}: {attr!r} is not callable")
    return obj


class InputAdapter(nn.Module):
    """Images in [0, 1] -> what the network expects: ``(x * scale - mean) / std``."""

    def __init__(
        self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], scale: float
    ) -> None:
        super().__init__()
        self.net, self.scale = net, scale
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x * self.scale - self.mean) / self.std)


def _declared(mdef: ModelDef, fn: Any, net: nn.Module) -> tuple[Any, Any, float]:
    """mean, std and scale: the user's, else the module's or the callable's own."""

    def own(name: str) -> Any:
        return getattr(net, name, getattr(fn, name, None))

    mean = mdef.mean if mdef.mean is not None else own("input_mean")
    std = mdef.std if mdef.std is not None else own("input_std")
    scale = mdef.scale if mdef.scale is not None else own("input_scale")
    return mean, std, float(scale or 1.0)


def adapt(net: nn.Module, mdef: ModelDef, fn: Any = None) -> nn.Module:
    mean, std, scale = _declared(mdef, fn, net)
    if mean is None and std is None and scale == 1.0:
        return net
    if (mean is None) != (std is None):
        raise ValueError(f"{mdef.target}: give both a mean and a std, or neither")
    mean = (0.0,) if mean is None else tuple(float(v) for v in mean)
    std = (1.0,) if std is None else tuple(float(v) for v in std)
    if any(s <= 0 for s in std) or scale <= 0:
        raise ValueError(f"{mdef.target}: std and input scale must be > 0")
    return InputAdapter(net, mean, std, scale).eval()


def read_state(file: Path) -> dict[str, Tensor]:
    """A state dict from ``file``: safetensors, or ``torch.save`` output read with
    ``weights_only=True`` (unwrapped from ``{"state_dict": ...}`` and ``module.`` prefixes)."""
    if file.suffix == ".safetensors":
        check_file(file, "checkpoint file")
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as e:  # a corrupt header, not a safetensors file
            raise ValueError(f"checkpoint file {file} is not a safetensors file ({e})") from None
    state = load_tensors(file, "checkpoint file")
    while isinstance(state, dict) and len(state) == 1 and next(iter(state)) in _WRAPPERS:
        state = next(iter(state.values()))
    if isinstance(state, dict):
        state = state.get("state_dict", state)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"checkpoint file {file} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def build(mdef: ModelDef, file: Path | None = None) -> nn.Module:
    """``target(**args)`` with the weights of ``file`` (eval mode, CPU), behind its input
    adapter. A callable with a ``load_weights(net, file, **args)`` attribute loads them
    itself (the zoo's); otherwise the state dict must match the module exactly."""
    fn = import_callable(mdef.target)
    try:
        net = fn(**mdef.args)
    except TypeError as e:
        raise ValueError(f"--model-args for {mdef.target}: {e}") from None
    if not isinstance(net, nn.Module):
        raise ValueError(f"{mdef.target}(...) returned {type(net).__name__}, not a torch module")
    if file is not None:
        loader = getattr(fn, "load_weights", None)
        net = loader(net, file, **mdef.args) if loader else _load(net, file, mdef.target)
    return adapt(net.eval(), mdef, fn)


def _load(net: nn.Module, file: Path, target: str) -> nn.Module:
    state = read_state(file)
    missing, unexpected = net.state_dict().keys() - state.keys(), state.keys() - net.state_dict()
    if missing or unexpected:
        what = [f"{len(missing)} missing (e.g. {sorted(missing)[0]})"] if missing else []
        what += (
            [f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[0]})"] if unexpected else []
        )
        raise ValueError(f"{file} does not fit {target}: {', '.join(what)} keys")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        raise ValueError(f"{file} does not fit {target}: {first}") from None
    return net
