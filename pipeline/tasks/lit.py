"""LightningModules: what is optimised and what is logged; the networks live in pipeline.tasks.models."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.image import PeakSignalNoiseRatio

from pipeline.config.schema import Optim
from pipeline.core.errors import DivergenceError


class _Base(L.LightningModule):
    """The loop shared by every task; a subclass states its loss, its validation score and monitor.

    The epoch's figures are torchmetrics objects: each process adds its own batches, and
    Lightning's compute at the epoch's end reduces them across DDP processes, so the checkpoint
    monitor and the curves see the figure of the whole validation set.
    """

    monitor: str
    mode: str

    def __init__(self, net: nn.Module, optim: Optim, score: Metric):
        super().__init__()
        self.net, self.optim = net, optim
        self.train_loss, self.val_loss, self.val_score = MeanMetric(), MeanMetric(), score

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
        self.train_loss.update(loss.detach(), len(target))
        return loss

    def validation_step(self, batch, _):
        x, target = batch
        out = self(x)
        self.val_loss.update(self.loss(out, target), len(target))
        self.val_score.update(self.prediction(out), target)

    def figures(self) -> dict[str, Metric]:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, self.monitor: self.val_score}

    def on_validation_epoch_end(self):
        # Logged once per epoch, not per batch: Lightning's self.log costs ~0.5 ms a call, a tenth
        # of a small model's step. Validation runs after the epoch's last training batch and before
        # every on_train_epoch_end hook, so the training loss goes out here too. Lightning computes
        # (across processes) and resets each metric.
        self.log_dict(self.figures())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.optim.epochs)
        return {"optimizer": opt, "lr_scheduler": sched}


class ClassifierModule(_Base):
    monitor, mode = "val_acc", "max"

    def __init__(self, net: nn.Module, optim: Optim, num_classes: int):
        super().__init__(net, optim, MulticlassAccuracy(num_classes, average="micro"))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out


class SRModule(_Base):
    """L2 loss on Y in [0, 1]; validation PSNR of all validation patches together (a training signal, not the
    protocol)."""

    monitor, mode = "val_psnr", "max"

    def __init__(self, net: nn.Module, optim: Optim):
        super().__init__(net, optim, PeakSignalNoiseRatio(data_range=1.0))

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target)

    def prediction(self, out: torch.Tensor) -> torch.Tensor:
        return out.clamp(0, 1)


def module_for(task: str, net: nn.Module, optim: Optim, data_args: dict) -> _Base:
    if task == "classification":
        return ClassifierModule(net, optim, data_args["num_classes"])
    return SRModule(net, optim)
