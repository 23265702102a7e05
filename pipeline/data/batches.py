"""The order in which a training reads its data: whole batches, shuffled by (seed, epoch) alone, and
under DDP each process's share of every global batch. Task-independent: both tasks' data modules and
the classification evaluation read through it."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class Batches(Sampler[list[int]]):
    """Batches of indices, shuffled by (seed, epoch) alone, so a resumed run sees the same batches.

    A DataLoader with ``batch_size=None`` hands each list to the dataset in one
    call: the in-memory datasets here index a whole batch at once, which is
    several times faster than collating samples one by one. Without a seed the
    order is fixed (validation). Lightning calls ``set_epoch`` before every epoch.

    Under DDP, ``batch_size`` is the global batch and process ``rank`` of ``world`` takes
    its share of each one, so the batches depend on (seed, epoch, world) only and
    together hold every sample exactly once: nothing is padded with duplicates. Training
    processes must step together: a last batch too small to share is left out.
    """

    def __init__(self, n: int, batch_size: int, seed: int | None = None, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _span(self, size: int) -> tuple[int, int]:
        """This process's [start, stop) of a global batch of ``size`` samples; empty: it sits that batch out."""
        if self.seed is not None and size < self.world:
            return 0, 0  # training processes step together: a batch too small to share is left out
        base, extra = divmod(size, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def __iter__(self):
        # A generator, so the order is drawn at the first batch: on a resumed run Lightning creates the
        # iterator before it calls set_epoch, and an order drawn eagerly would be the previous epoch's.
        if self.seed is None:
            order = torch.arange(self.n)
        else:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        for batch in order.split(self.batch_size):
            start, stop = self._span(len(batch))
            if stop > start:
                yield batch[start:stop]

    def __len__(self) -> int:
        full, last = divmod(self.n, self.batch_size)
        return sum(stop > start for start, stop in map(self._span, [self.batch_size] * full + [last] * (last > 0)))


def batch_loader(dataset: Dataset, batch_size: int, seed: int | None = None, num_workers: int = 0, rank: int = 0,
                 world: int = 1) -> DataLoader:
    """Whole batches fetched in one indexing call; shuffled per epoch when ``seed`` is given; process ``rank``'s
    share of each under DDP (``world`` processes)."""
    return DataLoader(dataset, batch_size=None, sampler=Batches(len(dataset), batch_size, seed, rank, world),
                      num_workers=num_workers)
