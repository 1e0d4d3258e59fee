"""RobustBench model-zoo architectures and their published weights, loaded safely.

The architecture comes from RobustBench's zoo entry; the weights are read here with
``torch.load(weights_only=True)`` (a pickle cannot run code, whatever
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says), cleaned as RobustBench cleans them
(``module.``/``model.`` prefixes, a ``state_dict`` wrapper), and handed to RobustBench's
state-dict loader. RobustBench's own ``load_model`` (which unpickles without
``weights_only``) is only used to download a file when the machine is online.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.core.constants import EPS_CIFAR
from bench.core.files import check_file, load_tensors
from bench.core.registry import Registry
from bench.data import offline
from bench.models.nets import robustbench_architectures

ZOO_DATASET, THREAT_MODEL, ZOO_EPS = "cifar10", "Linf", EPS_CIFAR
ENV_ZOO_DIR = "BENCH_ZOO_DIR"
DEFAULT_ZOO_DIR = "results/zoo"
# RobustBench keeps the "last" of two stored models for these entries.
_LAST_OF_TWO = ("Kireev2021Effectiveness", "Andriushchenko2020Understanding")


class ZooCheckpointMissing(LookupError):
    """No checkpoint file and no way to download one: the message says where to put it."""


def _robustbench() -> tuple[Any, dict[str, dict]]:
    """robustbench.utils and its CIFAR-10 Linf entries (imported the offline-safe way)."""
    robustbench_architectures()  # aliases autoattack, silences import notices
    from robustbench import utils
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return utils, utils.all_models[BenchmarkDataset.cifar_10][ThreatModel.Linf]


def zoo_registry() -> Registry[dict]:
    """The CIFAR-10 Linf entries, so an unknown name fails with "did you mean"."""
    reg: Registry[dict] = Registry("RobustBench CIFAR-10 Linf model")
    for name, entry in _robustbench()[1].items():
        reg.add(name, entry)
    return reg


def model_dir(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get(ENV_ZOO_DIR) or DEFAULT_ZOO_DIR).expanduser().resolve()


def expected_file(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where RobustBench looks for (and downloads) the checkpoint."""
    return model_dir(root) / ZOO_DATASET / THREAT_MODEL / f"{name}.pt"


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def zoo_architecture(name: str) -> nn.Module:
    """Zoo entry ``name``'s network, untrained: the model definition of a zoo run
    (bench/models/external.py ``ZOO_TARGET``), whose weights ``load_weights`` reads."""
    return zoo_registry().get(name)["model"]()


def _load_into(net: nn.Module, file: Path, name: str) -> nn.Module:
    return load_zoo_weights(name, Path(file), net)


zoo_architecture.load_weights = _load_into  # type: ignore[attr-defined]


def load_zoo_weights(name: str, file: Path, model: nn.Module | None = None) -> nn.Module:
    """Zoo entry ``name`` (``model``, else a new one) with the weights of ``file`` (eval
    mode, CPU); no code can run."""
    entry = zoo_registry().get(name)
    if isinstance(entry.get("gdrive_id"), list):
        raise ValueError(f"{name} is an ensemble of several files; not supported here")
    if file.is_dir():
        check_file(file, "checkpoint file")  # a folder: one line saying so
    if not file.is_file():
        raise ZooCheckpointMissing(f"checkpoint file {file} does not exist")
    ckpt = load_tensors(file, "checkpoint file")
    if name in _LAST_OF_TWO and isinstance(ckpt, dict) and "last" in ckpt:
        ckpt = ckpt["last"]
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{file} holds no state dict of tensors")
    state = _strip(_strip(state, "module."), "model.")
    utils, _ = _robustbench()
    from robustbench.model_zoo.enums import BenchmarkDataset

    model = entry["model"]() if model is None else model
    return utils._safe_load_state_dict(model, name, state, BenchmarkDataset.cifar_10).eval()


def download(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint file of ``name``, downloaded by RobustBench first if missing."""
    path = expected_file(name, root)
    if path.is_file():
        return path
    hint = f"put the checkpoint at {path} or pass --checkpoint-file PATH"
    if offline():
        raise ZooCheckpointMissing(f"no checkpoint for {name} and downloads are off; {hint}")
    utils, _ = _robustbench()
    gid = zoo_registry().get(name).get("gdrive_id")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        utils.download_gdrive_new(gid, path)
    except Exception as e:  # no network surfaces as many exception types (gdown, requests)
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()  # a failed download leaves an empty file behind
        raise ZooCheckpointMissing(
            f"could not download {name} ({' '.join(str(e).split())[:120]}); {hint}"
        ) from e
    return path
