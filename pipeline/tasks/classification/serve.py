"""A served classifier's answer to one image: its class and probability."""

from __future__ import annotations

from typing import BinaryIO

import torch
from torch import nn

from pipeline.tasks.classification.predict import classify, read_digit

OUTPUTS = [("string", "class"), ("double", "probability")]


def read(source: BinaryIO, name: str) -> torch.Tensor:
    """One request's image, read and checked as `lstmvision classify` reads a file."""
    return read_digit(source, name)


def answer(net: nn.Module, spec: dict, image: torch.Tensor) -> dict:
    name, probability = classify(net, spec, [image])[0]
    return {"class": name, "probability": probability}
