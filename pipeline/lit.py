"""LightningModules: what is optimised and what is logged; the networks live in pipeline.models."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import Optim
from pipeline.errors import DivergenceError


class _Base(L.LightningModule):
    """The loop shared by every task; a subclass states its loss, validation metrics and monitor."""

    monitor: str
    mode: str

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

    def training_step(self, batch, _):
        x, target = batch
        loss = self.loss(self(x), target)
        self._check_finite(loss)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, target = batch
        self.log_dict(self.val_metrics(self(x), target), on_epoch=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.optim.epochs)
        return {"optimizer": opt, "lr_scheduler": sched}


class ClassifierModule(_Base):
    monitor, mode = "val_acc", "max"

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target)

    def val_metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"val_loss": self.loss(out, target), "val_acc": (out.argmax(-1) == target).float().mean()}


class SRModule(_Base):
    """L2 loss on Y in [0, 1]; validation PSNR on whole patches (a training signal, not the protocol)."""

    monitor, mode = "val_psnr", "max"

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target)

    def val_metrics(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(out.clamp(0, 1), target)
        return {"val_loss": mse, "val_psnr": -10 * torch.log10(mse.clamp_min(1e-12))}


def module_for(task: str):
    return {"classification": ClassifierModule, "sr": SRModule}[task]
