"""A served classifier's answer to one image: its class and probability."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.tasks.classification.predict import classify

OUTPUTS = [("string", "class"), ("double", "probability")]


def answer(net: nn.Module, spec: dict, image: torch.Tensor) -> dict:
    name, probability = classify(net, spec, [image])[0]
    return {"class": name, "probability": probability}
