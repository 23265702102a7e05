"""The tasks (classification, super-resolution): each one package that owns everything only it needs.

Generic code (the training loop, the stages, serving) reaches a task through the parts named in
:mod:`pipeline.tasks.base`, imported on demand by name, so a stage imports only the task it runs:
a classifier's training never imports SR code, and the reverse.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.tasks.base import EvaluationPart, ServingPart, TrainingPart

TASKS = ("classification", "sr")


def part_module(task: str, part: str) -> str:
    """The module of one part of a task: what a stage imports (and, for DVC, depends on)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    return f"{__name__}.{task}.{part}"


def loaded_by_name(task: str, part: str) -> list[str]:
    """The modules generic code imports by name to run one part of a task: the part itself and the task's
    networks (every part builds or loads models through pipeline.tasks.models). A stage's code deps and
    the code keys (pipeline.core.codedeps) follow these."""
    return [part_module(task, part), part_module(task, "networks")]


def training(task: str) -> TrainingPart:
    return importlib.import_module(part_module(task, "train"))


def evaluation(task: str) -> EvaluationPart:
    return importlib.import_module(part_module(task, "evaluate"))


def serving(task: str) -> ServingPart:
    return importlib.import_module(part_module(task, "serve"))


def networks(task: str) -> dict:
    """The task's architecture name -> network constructor."""
    return importlib.import_module(part_module(task, "networks")).NETWORKS
