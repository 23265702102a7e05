"""Lightning callbacks of a training: progress lines, the curve kept across resumes, the MLflow curves,
and the training time across resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class EpochLine(Callback):
    """One log line per epoch: the progress report for non-interactive logs."""

    def __init__(self, name: str):
        self.name, self.start = name, time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(trainer.callback_metrics.items()))
        print(f"[{self.name}] epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {metrics} "
              f"({time.monotonic() - self.start:.0f}s)", flush=True)


class History(Callback):
    """Per-epoch metrics for the DVC plot of the training curve, kept on disk across resumes."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = json.loads(path.read_text()) if path.exists() else []

    def on_train_epoch_end(self, trainer, pl_module):
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: round(float(v), 6) for k, v in sorted(trainer.callback_metrics.items())})
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self.path.parent.mkdir(parents=True, exist_ok=True)  # the work folder may have been deleted meanwhile
        self.path.write_text(json.dumps(self.rows))


class Curves(Callback):
    """The epoch's training and validation figures to the MLflow run, at step = epoch (1-based), so the
    UI's charts read in epochs like the DVC plots."""

    def __init__(self, run):
        self.run = run

    def on_train_epoch_end(self, trainer, pl_module):
        self.run.log_metrics({k: float(v) for k, v in trainer.callback_metrics.items()}, step=trainer.current_epoch + 1)


class Clock(Callback):
    """Training time across resumes: written at every epoch end, so a killed run's time up to its last
    checkpoint is not lost from the time the resumed run reports."""

    def __init__(self, path: Path, resumed: bool):
        self.path, self.start = path, time.monotonic()
        self.before = float(path.read_text()) if resumed and path.exists() else 0.0

    def total(self) -> float:
        return self.before + time.monotonic() - self.start

    def on_train_epoch_end(self, trainer, pl_module):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{self.total():.3f}")
