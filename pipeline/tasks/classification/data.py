"""Prepared data as torch datasets, without Lightning (evaluation and tools use these too).

Prepared data (written by the split and patches stages):
  classification: <dir>/{train,val,test}.npz with x uint8 (N, H, W), y int64 (N)
  super-resolution: <dir>/x<scale>/{lr,hr}.npy uint8 (N, 1, p, p), memory-mapped
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset


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


def sequence_view(x: torch.Tensor, view: str, perm: torch.Tensor | None = None) -> torch.Tensor:
    """Images (N, H, W) as the model reads them: rows (N, H, W), pixels or permuted (N, H*W, 1), image (N, 1, H, W)."""
    if view == "rows":
        return x
    if view == "pixels":
        return x.flatten(1)[..., None]
    if view == "permuted":
        return x.flatten(1)[:, perm][..., None]
    if view == "image":
        return x[:, None]
    raise ValueError(f"unknown view {view!r}")


def pixel_permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def load_classification(data_dir: Path, view: str, seed: int) -> dict[str, TensorDataset]:
    """train/val/test in the model's view, standardised with the training split's statistics."""
    raw = {}
    for split in ("train", "val", "test"):
        with np.load(Path(data_dir) / f"{split}.npz") as z:
            raw[split] = (torch.from_numpy(z["x"]), torch.from_numpy(z["y"]))
    x_train = raw["train"][0].float() / 255
    mean, std = standardisation(x_train)
    perm = pixel_permutation(x_train.shape[1] * x_train.shape[2], seed)
    return {split: TensorDataset(sequence_view((x.float() / 255 - mean) / std, view, perm), y)
            for split, (x, y) in raw.items()}


def standardisation(x_train: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the training images in [0, 1]: every split, and every image
    a user classifies later, is standardised with these."""
    return float(x_train.mean()), float(x_train.std())


def border(images: torch.Tensor) -> torch.Tensor:
    """The pixels along the edges of images (..., H, W), flattened per image."""
    return torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)


def polarity(images: torch.Tensor) -> str:
    """"light_on_dark" (MNIST: white ink on black) or "dark_on_light", told by the images' edges."""
    return "light_on_dark" if float(border(images).mean()) < 0.5 else "dark_on_light"


def classification_input(data_dir: Path) -> dict:
    """What inference needs to prepare an image as training did, for model.json: standardisation,
    polarity (told by the training images' borders) and class names."""
    with np.load(Path(data_dir) / "train.npz") as z:
        x, y = torch.from_numpy(z["x"]).float() / 255, z["y"]
    mean, std = standardisation(x)
    return {"mean": mean, "std": std, "polarity": polarity(x), "class_names": [str(c) for c in range(int(y.max()) + 1)]}


def classification_shape(data_dir: Path) -> tuple[int, int]:
    """(image side, number of classes) of the prepared classification data."""
    with np.load(Path(data_dir) / "train.npz") as z:
        return int(z["x"].shape[-1]), int(z["y"].max()) + 1


class PatchDataset(Dataset):
    """Memory-mapped uint8 patch pairs, returned as float in [0, 1]; ``i`` is an index or a batch of them."""

    def __init__(self, lr: np.ndarray, hr: np.ndarray, index: np.ndarray):
        self.lr, self.hr, self.index = lr, hr, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        j = self.index[np.asarray(i)]
        return (torch.from_numpy(np.asarray(self.lr[j], dtype=np.float32) / 255),
                torch.from_numpy(np.asarray(self.hr[j], dtype=np.float32) / 255))


def batch_loader(dataset: Dataset, batch_size: int, seed: int | None = None, num_workers: int = 0, rank: int = 0,
                 world: int = 1) -> DataLoader:
    """Whole batches fetched in one indexing call; shuffled per epoch when ``seed`` is given; process ``rank``'s
    share of each under DDP (``world`` processes)."""
    return DataLoader(dataset, batch_size=None, sampler=Batches(len(dataset), batch_size, seed, rank, world),
                      num_workers=num_workers)
