"""Training an SR network: LR/HR patch pairs and what it optimises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio

from pipeline.config.schema import Optim, Params, SRData, Variant
from pipeline.tasks.lit import BatchedData, TaskModule
from pipeline.tasks.sr.data import PatchDataset

PREPARED = "sr"  # its folder under data/prepared


class SRDataModule(BatchedData):
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


class SRModule(TaskModule):
    """L2 loss on Y in [0, 1]; validation PSNR of all validation patches together (a training signal, not the
    protocol). The learning rate rises linearly over the first tenth of the steps before its cosine: over 6
    seeds of the default's lsrcnn it halved the seed-to-seed spread (Set5 0.037 -> 0.015 dB, Set14 0.018 ->
    0.008 dB) at the same mean, the noise the regression gate has to see through."""

    monitor = "val_psnr"
    warmup = 0.1  # of the training's steps

    def __init__(self, net: nn.Module, optim: Optim):
        super().__init__(net, optim, PeakSignalNoiseRatio(data_range=1.0))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out.clamp(0, 1)

    def optimizer(self, steps: int):
        warm = max(1, int(self.warmup * steps))
        opt, cosine = super().optimizer(steps - warm)
        rise = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warm, total_iters=warm)
        return opt, torch.optim.lr_scheduler.SequentialLR(opt, [rise, cosine], milestones=[warm])


def scales(params: Params) -> list[int | None]:
    return list(params.data.sr.scales)  # one training per seed and scale


def data_section(params: Params) -> SRData:
    return params.data.sr


def shaping_data(params: Params) -> dict:
    """The patch settings, less the scales: a training's own scale is keyed, the other scales do not shape it
    (and the evaluation sets do not either, so adding a benchmark re-trains nothing)."""
    data = params.data.sr.patch_settings()
    data.pop("scales")
    return data


def datamodule(variant: Variant, params: Params, prepared: Path, seed: int, scale: int | None) -> SRDataModule:
    return SRDataModule(prepared / PREPARED, scale, variant.optim.batch_size, params.data.sr.val_fraction,
                        params.seed, seed, params.trainer.num_workers)


def module(net: nn.Module, optim: Optim, data_args: dict) -> SRModule:
    return SRModule(net, optim)
