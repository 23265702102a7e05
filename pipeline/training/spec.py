"""What one training is and where it reads and writes: the arguments of pipeline.training.loop.train."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config.schema import Params, Variant
from pipeline.tracking.store import Store


@dataclass(frozen=True)
class Training:
    """One (variant, seed[, scale]) training under the project's params."""

    name: str
    variant: Variant
    params: Params
    seed: int
    scale: int | None = None

    @property
    def task(self) -> str:
        return self.variant.task

    @property
    def run_name(self) -> str:
        """Its MLflow run's name and its work folder: lstm_row_s1, lsrcnn_x2_s3."""
        return f"{self.name}_x{self.scale}_s{self.seed}" if self.scale else f"{self.name}_s{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.name} x{self.scale} seed {self.seed}" if self.scale else f"{self.name} seed {self.seed}"


@dataclass(frozen=True)
class Places:
    """Where trainings read and write: the project root, the prepared data, the work folder (checkpoints and
    finished trainings, outside DVC's outputs), the tracking store, and the variant's models folder being
    written (each training exports to its model_folder there)."""

    root: Path
    prepared: Path
    work: Path
    store: Store | None  # None on DDP ranks other than 0, which never talk to MLflow
    models: Path
