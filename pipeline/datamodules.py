"""Lightning DataModules: where the batches come from, in the view each variant reads."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from pipeline.datasets import EpochShuffle, PatchDataset, classification_shape, load_classification


class ClassificationDataModule(L.LightningDataModule):
    def __init__(self, data_dir: Path, view: str, batch_size: int, seed: int, num_workers: int = 0):
        super().__init__()
        self.data_dir, self.view, self.batch_size = Path(data_dir), view, batch_size
        self.seed, self.num_workers = seed, num_workers

    def data_args(self) -> dict:
        side, classes = classification_shape(self.data_dir)
        return {"input_size": side if self.view == "rows" else 1, "num_classes": classes, "image_size": side}

    def setup(self, stage: str | None = None) -> None:
        self.splits = load_classification(self.data_dir, self.view, self.seed)

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
