"""``bench eval --model-def PACKAGE.MODULE:CALLABLE --checkpoint FILE``: a user's own model,
evaluated as an external run (bench/jobs/external.py, bench/models/external.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

import attacks
from bench.cli.common import parse_params
from bench.cli.deferred import external_jobs, model_external
from bench.core.flags import option


@dataclass(frozen=True)
class ModelDefFlags:
    """The options that say what a user's own model is (declared once, bench/core/flags.py)."""

    model_def: str | None = option(
        None,
        "--model-def",
        "evaluate your own model: PACKAGE.MODULE:CALLABLE returning an nn.Module, with "
        "--checkpoint FILE (its weights) and --dataset",
    )
    model_args: list[str] | None = option(
        None, "--model-args", "with --model-def: the callable's argument KEY=VALUE (repeatable)"
    )
    dataset: str | None = option(
        None, "--dataset", "with --model-def: its data set (bench ls datasets) [default: cifar10]"
    )
    mean: str | None = option(
        None,
        "--mean",
        "with --model-def: the per-channel mean its network subtracts from [0, 1] inputs, "
        "e.g. 0.4914,0.4822,0.4465 [default: the callable's input_mean, else none]",
    )
    std: str | None = option(
        None, "--std", "with --model-def: the per-channel std it divides by (as --mean)"
    )
    input_scale: float | None = option(
        None,
        "--input-scale",
        "with --model-def: its network takes pixels in [0, SCALE], e.g. 255 [default: 1]",
        low=0,
    )

    def given(self) -> list[str]:
        """The options set, by flag (each is only meaningful with --model-def)."""
        names = ("--model-args", "--dataset", "--mean", "--std", "--input-scale")
        values = (self.model_args, self.dataset, self.mean, self.std, self.input_scale)
        return [n for n, v in zip(names, values, strict=True) if v is not None]

    def definition(self) -> model_external.ModelDef:
        assert self.model_def is not None
        return model_external.ModelDef(
            self.model_def,
            parse_params(self.model_args or [], "--model-args"),
            _floats(self.mean, "--mean"),
            _floats(self.std, "--std"),
            self.input_scale,
        )


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def own_model_run(
    engine: Engine,
    flags: ModelDefFlags,
    checkpoint: str | None,
    names: list[str],
    *,
    data_root: str | None,
    device: str,
) -> str:
    """The external run of ``--model-def`` (made once, weights checked first); its name."""
    if checkpoint is None:
        raise ValueError("--model-def needs --checkpoint FILE: the model's weights")
    for a in names:
        if attacks.is_transfer(a):
            raise ValueError(f"{a}: transfer attacks need a surrogate run; not for --model-def")
    return external_jobs.external_run(
        engine,
        flags.definition(),
        checkpoint,
        flags.dataset or "cifar10",
        data_root=data_root,
        device=device,
    )
