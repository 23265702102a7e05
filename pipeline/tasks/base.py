"""The interface generic code asks a task through: three parts, each a module of the task's package.

``train``     what a training of the task reads and optimises (TrainingPart)
``evaluate``  the test metrics of a trained variant, or of an untrained baseline (EvaluationPart)
``serve``     one answer of a served model, and its signature (ServingPart)
``networks``  ``NETWORKS``: architecture name -> nn.Module constructor

A new task is a package with these modules, its name in ``pipeline.tasks.TASKS`` and its
architectures in ``pipeline.config.architectures``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    import lightning as L
    import numpy as np
    import pandas as pd
    import torch
    from torch import nn

    from pipeline.config.schema import Optim, Params, Variant


class TaskData(Protocol):
    """A task's LightningDataModule, plus what an exported model records about its input."""

    def data_args(self) -> dict: ...  # shape arguments of the network (input size, classes, scale)
    def input_spec(self) -> dict: ...  # how inference prepares an image as training did (model.json)
    def example_image(self) -> np.ndarray: ...  # a real 8-bit input, the served model's input example


class TrainingPart(Protocol):
    def scales(self, params: Params) -> list[int | None]: ...  # one training per seed and scale (None: none)
    def data_section(self, params: Params) -> Any: ...  # the task's params.data section (run params)
    def shaping_data(self, params: Params) -> dict: ...  # what of it shapes a training (its resume key)
    def datamodule(self, variant: Variant, params: Params, prepared: Path, seed: int, scale: int | None
                   ) -> L.LightningDataModule | TaskData: ...
    def module(self, net: nn.Module, optim: Optim, data_args: dict) -> L.LightningModule: ...


@dataclass(frozen=True)
class Evaluated:
    """A variant's (or baseline's) evaluation: every test image's result per seed, the metrics over seeds
    (metrics/NAME.json), test throughput, and sample outputs to show (file name -> image (C, H, W))."""

    per_image: pd.DataFrame
    metrics: dict
    speed: dict
    samples: dict[str, torch.Tensor]
    warnings: dict[str, str] = field(default_factory=dict)  # seed -> one line: a model that learned nothing


@dataclass(frozen=True)
class Inputs:
    """Where an evaluation reads: raw datasets, prepared data, exported models."""

    raw: Path
    prepared: Path
    models: Path


class EvaluationPart(Protocol):
    def evaluate(self, name: str, params: Params, inputs: Inputs) -> Evaluated: ...


class ServingPart(Protocol):
    OUTPUTS: list[tuple[str, str]]  # (MLflow column type, name) of each answer column

    def read(self, source: BinaryIO, name: str) -> torch.Tensor: ...  # one request's image, as the CLI reads a file
    def answer(self, net: nn.Module, spec: dict, image: torch.Tensor) -> dict: ...
