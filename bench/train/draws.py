"""A shard's per-example random draws, taken from the global batch's (data parallel).

In a process group each rank trains rows ``[lo, hi)`` of every global batch of ``n``
(bench/train/distributed.py). An inner attack's random start or a dropout mask drawn for
those rows alone would differ from what one process draws for them; within
:class:`GlobalDraws`, a random op on a tensor with the shard's rows draws for the whole
global batch instead (the RNG advances as in one process) and keeps the shard's rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode


class GlobalDraws(TorchFunctionMode):
    """Random ops on a tensor with this shard's rows draw for the global batch and slice.

    Covers ``randn_like``, ``rand_like``, in-place ``uniform_``, ``normal_``,
    ``bernoulli_`` and ``F.dropout``; the RNG advances as in one process.
    """

    def __init__(self, lo: int, hi: int, n: int) -> None:
        super().__init__()
        self.lo, self.hi, self.n = lo, hi, n

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        t = args[0] if args else None
        rows = isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == self.hi - self.lo
        if rows and func in (torch.randn_like, torch.rand_like):
            return func(self._whole(t), *args[1:], **kwargs)[self.lo : self.hi]
        if rows and func in _IN_PLACE:
            whole = getattr(self._whole(t), func.__name__)(*args[1:], **kwargs)
            return t.copy_(whole[self.lo : self.hi])
        if rows and func is F.dropout and kwargs.get("training", True):
            mask = F.dropout(torch.ones_like(self._whole(t)), kwargs.get("p", 0.5), True)
            out = t * mask[self.lo : self.hi]
            return t.copy_(out) if kwargs.get("inplace") else out
        return func(*args, **kwargs)

    def _whole(self, t: torch.Tensor) -> torch.Tensor:
        """An empty global batch laid out as ``t`` (the draw order follows the layout)."""
        shape, fmt = (self.n, *t.shape[1:]), torch.contiguous_format
        if (
            t.dim() == 4
            and not t.is_contiguous()
            and t.is_contiguous(memory_format=torch.channels_last)
        ):
            fmt = torch.channels_last
        return torch.empty(shape, dtype=t.dtype, device=t.device, memory_format=fmt)


_IN_PLACE = (torch.Tensor.uniform_, torch.Tensor.normal_, torch.Tensor.bernoulli_)
