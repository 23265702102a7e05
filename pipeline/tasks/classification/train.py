"""Training a classifier: its batches (in the view the variant reads) and what it optimises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from pipeline.config.schema import ClassificationData, Optim, Params, Variant
from pipeline.tasks.classification.data import classification_input, classification_shape, load_classification
from pipeline.tasks.lit import BatchedData, TaskModule

PREPARED = "classification"  # its folder under data/prepared


class ClassificationDataModule(BatchedData):
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


class ClassifierModule(TaskModule):
    monitor = "val_acc"

    def __init__(self, net: nn.Module, optim: Optim, num_classes: int):
        super().__init__(net, optim, MulticlassAccuracy(num_classes, average="micro"))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out


def scales(params: Params) -> list[int | None]:
    return [None]  # one training per seed


def data_section(params: Params) -> ClassificationData:
    return params.data.classification


def shaping_data(params: Params) -> dict:
    return params.data.classification.model_dump()


def datamodule(variant: Variant, params: Params, prepared: Path, seed: int, scale: int | None
               ) -> ClassificationDataModule:
    return ClassificationDataModule(prepared / PREPARED, variant.view, variant.optim.batch_size, params.seed, seed,
                                    params.trainer.num_workers)


def module(net: nn.Module, optim: Optim, data_args: dict) -> ClassifierModule:
    return ClassifierModule(net, optim, data_args["num_classes"])
