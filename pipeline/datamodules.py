"""Lightning DataModules: where the batches come from, and in which sequence view.

Prepared data (written by the split and patches stages):
  classification: <dir>/{train,val,test}.npz with x uint8 (N, H, W), y int64 (N)
  super-resolution: <dir>/x<scale>/{lr,hr}.npy uint8 (N, 1, p, p), memory-mapped
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset


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


class ClassificationDataModule(L.LightningDataModule):
    def __init__(self, data_dir: Path, view: str, batch_size: int, seed: int, num_workers: int = 0):
        super().__init__()
        self.data_dir, self.view, self.batch_size = Path(data_dir), view, batch_size
        self.seed, self.num_workers = seed, num_workers
        self.splits: dict[str, TensorDataset] = {}

    def _load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        with np.load(self.data_dir / f"{split}.npz") as z:
            return torch.from_numpy(z["x"]), torch.from_numpy(z["y"])

    @property
    def image_size(self) -> int:
        return int(self._load("train")[0].shape[-1])

    @property
    def num_classes(self) -> int:
        return int(self._load("train")[1].max()) + 1

    def data_args(self) -> dict:
        h = self.image_size
        return {"input_size": h if self.view == "rows" else 1, "num_classes": self.num_classes, "image_size": h}

    def setup(self, stage: str | None = None) -> None:
        x_train, _ = self._load("train")
        mean, std = x_train.float().mean() / 255, x_train.float().std() / 255
        perm = pixel_permutation(x_train.shape[1] * x_train.shape[2], self.seed)
        for split in ("train", "val", "test"):
            x, y = self._load(split)
            x = (x.float() / 255 - mean) / std
            self.splits[split] = TensorDataset(sequence_view(x, self.view, perm), y)

    def _loader(self, split: str) -> DataLoader:
        ds = self.splits[split]
        sampler = EpochShuffle(len(ds), self.seed) if split == "train" else None
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


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


class SRDataModule(L.LightningDataModule):
    def __init__(self, data_dir: Path, scale: int, batch_size: int, val_fraction: float, seed: int,
                 num_workers: int = 0):
        super().__init__()
        self.dir = Path(data_dir) / f"x{scale}"
        self.scale, self.batch_size, self.val_fraction = scale, batch_size, val_fraction
        self.seed, self.num_workers = seed, num_workers

    def data_args(self) -> dict:
        return {"scale": self.scale, "channels": 1}

    def setup(self, stage: str | None = None) -> None:
        lr = np.load(self.dir / "lr.npy", mmap_mode="r")
        hr = np.load(self.dir / "hr.npy", mmap_mode="r")
        order = np.random.default_rng(self.seed).permutation(len(lr))
        n_val = max(1, int(round(len(lr) * self.val_fraction)))
        self.train_set = PatchDataset(lr, hr, np.sort(order[n_val:]))
        self.val_set = PatchDataset(lr, hr, np.sort(order[:n_val]))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, num_workers=self.num_workers,
                          sampler=EpochShuffle(len(self.train_set), self.seed))

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)
