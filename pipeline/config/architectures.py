"""What params.yaml may say about each architecture: its task, the views it reads, its options.

Kept apart from the networks (pipeline.tasks.models) so validating params imports no
torch: every stage validates params, and every stage's DVC deps list what it
imports. Options are strict (no type coercion) and bounded, so a typo such as
``attention: chanel`` or ``hidden: 0`` fails validation with the key path, not
a traceback inside training. Each options class's fields are keyword
arguments of its network's constructor (tests/test_models.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEQUENCE_VIEWS = ("rows", "pixels", "permuted")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RecurrentOptions(Options):
    cell: Literal["rnn", "gru", "lstm", "gates"] = "lstm"
    hidden: int = Field(128, ge=1, le=4096)
    layers: int = Field(1, ge=1, le=8)
    bidirectional: bool = False

    @model_validator(mode="after")
    def _gates_one_direction(self):
        if self.cell == "gates" and self.bidirectional:
            raise ValueError("cell 'gates' is single-direction; set bidirectional: false")
        return self


class StackedLSTMOptions(Options):
    hidden1: int = Field(128, ge=1, le=4096)
    hidden2: int = Field(64, ge=1, le=4096)


class ConvLSTMOptions(Options):
    channels: int = Field(32, ge=1, le=1024)
    hidden: int = Field(128, ge=1, le=4096)


class SROptions(Options):
    features: int = Field(64, ge=1, le=1024)
    hidden: int = Field(64, ge=1, le=4096)
    attention: Literal["none", "channel", "spatial", "mixed"] = "none"
    # The residual branch's output is multiplied by this (EDSR's residual scaling), so that a fresh network is
    # bicubic plus a small perturbation (pipeline/tasks/sr/networks.py says what it bought).
    residual_scale: float = Field(0.1, gt=0, le=1)
    # Ablation: the body's output is zeroed, so the decoder sees nothing of it (what the body buys).
    ablate_body: bool = False


@dataclass(frozen=True)
class ArchSpec:
    task: Literal["classification", "sr"]
    options: type[Options]
    views: tuple[str, ...] = ()  # the sequence views a classifier reads


ARCHITECTURES: dict[str, ArchSpec] = {
    "recurrent": ArchSpec("classification", RecurrentOptions, SEQUENCE_VIEWS),
    "stacked_lstm": ArchSpec("classification", StackedLSTMOptions, SEQUENCE_VIEWS),
    "cnn_lstm": ArchSpec("classification", ConvLSTMOptions, ("image",)),
    "crnn": ArchSpec("classification", ConvLSTMOptions, ("image",)),
    "lsrcnn": ArchSpec("sr", SROptions),
    "cnn_sr": ArchSpec("sr", SROptions),
}

# Untrained baselines scored beside the variants, by name, and their task (`lstmvision evaluate bicubic`).
BASELINES: dict[str, str] = {"bicubic": "sr"}


def task_of(name: str, variants: dict) -> str:
    """The task of a baseline or of a variant of params.yaml (``variants``: name -> Variant)."""
    return BASELINES[name] if name in BASELINES else variants[name].task
