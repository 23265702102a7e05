"""Prepared classification data as torch datasets, without Lightning (evaluation and inference use these
too): <dir>/{train,val,test}.npz with x uint8 (N, H, W), y int64 (N), written by the split stage; the
sequence views; the training images' standardisation and polarity, which inference repeats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset


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
