"""Lightning DataModules: where the batches come from, in the view each variant reads."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np

from pipeline.tasks.classification.data import (
    PatchDataset,
    batch_loader,
    classification_input,
    classification_shape,
    load_classification,
)


class _Batched(L.LightningDataModule):
    """Loaders of whole batches; under DDP each process reads its share of every global batch."""

    batch_size: int
    num_workers: int

    def _loader(self, dataset, seed: int | None):
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        return batch_loader(dataset, self.batch_size, seed, self.num_workers, rank, world)


class ClassificationDataModule(_Batched):
    """``seed`` orders the training batches; the data itself (split, permutation) is the data seed's."""

    def __init__(self, data_dir: Path, view: str, batch_size: int, data_seed: int, seed: int, num_workers: int = 0):
        super().__init__()
        self.data_dir, self.view, self.batch_size = Path(data_dir), view, batch_size
        self.data_seed, self.seed, self.num_workers = data_seed, seed, num_workers

    def data_args(self) -> dict:
        side, classes = classification_shape(self.data_dir)
        return {"input_size": side if self.view == "rows" else 1, "num_classes": classes, "image_size": side}

    def input_spec(self) -> dict:
        return classification_input(self.data_dir)

    def example_image(self) -> np.ndarray:
        """A real input for the served model's input example: the first test image, 8-bit."""
        with np.load(self.data_dir / "test.npz") as z:
            return z["x"][0]

    def setup(self, stage: str | None = None) -> None:
        self.splits = load_classification(self.data_dir, self.view, self.data_seed)

    def train_dataloader(self):
        return self._loader(self.splits["train"], self.seed)

    def val_dataloader(self):
        return self._loader(self.splits["val"], None)


class SRDataModule(_Batched):
    """The validation patches are drawn with the data seed, the same for every training seed."""

    def __init__(self, data_dir: Path, scale: int, batch_size: int, val_fraction: float, data_seed: int, seed: int,
                 num_workers: int = 0):
        super().__init__()
        self.dir = Path(data_dir) / f"x{scale}"
        self.scale, self.batch_size, self.val_fraction = scale, batch_size, val_fraction
        self.data_seed, self.seed, self.num_workers = data_seed, seed, num_workers

    def data_args(self) -> dict:
        return {"scale": self.scale, "channels": 1}

    def input_spec(self) -> dict:
        return {"colour": "Y (ITU-R 601, 8-bit) by the network, Cb and Cr by MATLAB bicubic", "range": [0, 1]}

    def example_image(self) -> np.ndarray:
        """A real input for the served model's input example: the first LR patch (8-bit Y)."""
        return np.array(np.load(self.dir / "lr.npy", mmap_mode="r")[0]).squeeze()

    def setup(self, stage: str | None = None) -> None:
        lr = np.load(self.dir / "lr.npy", mmap_mode="r")
        hr = np.load(self.dir / "hr.npy", mmap_mode="r")
        order = np.random.default_rng(self.data_seed).permutation(len(lr))
        n_val = max(1, int(round(len(lr) * self.val_fraction)))
        self.train_set = PatchDataset(lr, hr, np.sort(order[n_val:]))
        self.val_set = PatchDataset(lr, hr, np.sort(order[:n_val]))

    def train_dataloader(self):
        return self._loader(self.train_set, self.seed)

    def val_dataloader(self):
        return self._loader(self.val_set, None)
