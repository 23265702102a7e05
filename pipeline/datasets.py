"""Prepared data as torch datasets, without Lightning (evaluation and tools use these too).

Prepared data (written by the split and patches stages):
  classification: <dir>/{train,val,test}.npz with x uint8 (N, H, W), y int64 (N)
  super-resolution: <dir>/x<scale>/{lr,hr}.npy uint8 (N, 1, p, p), memory-mapped
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, TensorDataset


class EpochShuffle(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same batches.

    Lightning calls ``set_epoch`` on samplers that have it before every epoch.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


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
    mean, std = x_train.mean(), x_train.std()
    perm = pixel_permutation(x_train.shape[1] * x_train.shape[2], seed)
    return {split: TensorDataset(sequence_view((x.float() / 255 - mean) / std, view, perm), y)
            for split, (x, y) in raw.items()}


def classification_shape(data_dir: Path) -> tuple[int, int]:
    """(image side, number of classes) of the prepared classification data."""
    with np.load(Path(data_dir) / "train.npz") as z:
        return int(z["x"].shape[-1]), int(z["y"].max()) + 1


class PatchDataset(Dataset):
    """Memory-mapped uint8 patch pairs, returned as float in [0, 1]."""

    def __init__(self, lr: np.ndarray, hr: np.ndarray, index: np.ndarray):
        self.lr, self.hr, self.index = lr, hr, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        j = self.index[i]
        return (torch.from_numpy(np.array(self.lr[j], dtype=np.float32) / 255),
                torch.from_numpy(np.array(self.hr[j], dtype=np.float32) / 255))
