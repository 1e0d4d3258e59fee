"""A deterministic, resumable batch iterator over in-memory tensors (no DataLoader).

The batch order and the augmentation are a pure function of ``(seed, epoch)``: a resumed
run sees exactly the batches it would have seen had it never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.core.constants import seed_mix
from bench.core.lazy import torch

AUGMENTS = ("none", "crop-flip")


def crop_flip(
    x: torch.Tensor, gen: torch.Generator, pad: int = 4, rows: tuple[int, int, int] | None = None
) -> torch.Tensor:
    """Zero-pad by ``pad``, take a random crop of the original size, flip half horizontally.

    Vectorised over the batch (one gather) so it runs on the GPU; the random draws come from
    ``gen`` (a CPU generator) so the augmentation is reproducible from the seed alone.
    ``rows`` ``(lo, hi, n)``: ``x`` is rows lo..hi of a batch of n, and gets their draws.
    """
    b, _, h, w = x.shape
    lo, hi, n = rows or (0, b, b)
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)[lo:hi]
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)[lo:hi]
    flip = (torch.rand(n, generator=gen) < 0.5)[lo:hi]
    cols = ox[:, None] + torch.arange(w)[None, :]  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows = (oy[:, None] + torch.arange(h)[None, :]).to(x.device)
    cols = cols.to(x.device)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded[bi, :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


class Batches:
    """Mini-batches ``(x float32 in [0,1], y int64, idx int64)`` over in-memory tensors.

    The order and the augmentation depend only on ``(seed, epoch)``: call
    :meth:`set_epoch` before each epoch (the epoch is not advanced automatically), so a
    run resumed at epoch ``e`` replays exactly the batches of an uninterrupted run.
    ``idx`` (positions in the given tensors) stays on the CPU, where per-example state
    lives; ``x`` and ``y`` go to ``device``. Images may be uint8 (scaled by 1/255 per
    batch, so only the batch is converted) or floating point already in [0, 1].

    ``shard=(rank, world)`` (data-parallel training): every rank walks the same global
    batches and yields its rows of each, as :meth:`spans` says; the augmentation of a row
    is the one it gets in the global batch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        augment: str = "none",
        device: str | torch.device | None = None,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} points but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if augment not in AUGMENTS:
            raise ValueError(f"unknown augment {augment!r}; valid: {', '.join(AUGMENTS)}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment, self.drop_last = augment, drop_last
        self.device = torch.device(device) if device is not None else None
        self.epoch = 0
        self.rank, self.world = shard
        if not 0 <= self.rank < self.world:
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def spans(self) -> list[tuple[int, int, int]]:
        """Per batch ``(lo, hi, n)``: this shard yields rows lo..hi of a global batch of n
        (split as evenly as it goes: shard sizes differ by one at most)."""
        out = []
        for b in range(len(self)):
            n = min(self.batch_size, len(self.y) - b * self.batch_size)
            out.append((n * self.rank // self.world, n * (self.rank + 1) // self.world, n))
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(seed_mix(self.seed, self.epoch))
        n = len(self.y)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for b, (lo, hi, size) in enumerate(self.spans()):
            idx = order[b * self.batch_size : b * self.batch_size + size][lo:hi]
            xb, yb = self.x[idx], self.y[idx]
            if self.device is not None:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
            xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
            if self.augment == "crop-flip":
                xb = crop_flip(xb, gen, rows=(lo, hi, size))
            yield xb, yb.long(), idx
