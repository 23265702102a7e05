"""LightningModules: what is optimised and what is logged; the networks live in pipeline.models."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import Optim
from pipeline.errors import DivergenceError


class _Base(L.LightningModule):
    def __init__(self, net: nn.Module, optim: Optim):
        super().__init__()
        self.net, self.optim = net, optim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}: "
                "the run diverged (lower optim.lr?)"
            )

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.optim.epochs)
        return {"optimizer": opt, "lr_scheduler": sched}


class ClassifierModule(_Base):
    monitor, mode = "val_acc", "max"

    def training_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self._check_finite(loss)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True)
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), on_epoch=True)


class SRModule(_Base):
    """L2 loss on Y in [0, 1]; validation PSNR on whole patches (a training signal, not the protocol)."""

    monitor, mode = "val_psnr", "max"

    def training_step(self, batch, _):
        lr, hr = batch
        loss = F.mse_loss(self(lr), hr)
        self._check_finite(loss)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        lr, hr = batch
        mse = F.mse_loss(self(lr).clamp(0, 1), hr)
        self.log("val_loss", mse, on_epoch=True)
        self.log("val_psnr", -10 * torch.log10(mse.clamp_min(1e-12)), on_epoch=True)


def module_for(task: str):
    return {"classification": ClassifierModule, "sr": SRModule}[task]
