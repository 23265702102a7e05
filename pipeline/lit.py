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
        self._sums: dict[str, tuple[torch.Tensor, int]] = {}  # the epoch's figures, batch-size weighted

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
        self._add({"train_loss": loss}, len(target))
        return loss

    def validation_step(self, batch, _):
        x, target = batch
        self._add(self.val_metrics(self(x), target), len(target))

    def _add(self, figures: dict[str, torch.Tensor], n: int) -> None:
        for key, value in figures.items():
            total, count = self._sums.get(key, (0, 0))
            self._sums[key] = (total + value.detach() * n, count + n)

    def on_validation_epoch_end(self):
        # One log call per figure and epoch, not per batch: Lightning's self.log costs ~0.5 ms a
        # call, a tenth of a small model's step. Validation runs after the epoch's last training
        # batch and before every on_train_epoch_end hook, so the training loss goes out here too.
        self.log_dict({key: total / count for key, (total, count) in self._sums.items()})
        self._sums = {}

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
