"""A served SR model's answer to one image: the upscaled 8-bit PNG (base64) and its size."""

from __future__ import annotations

import base64
import io
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import nn

from pipeline.tasks.sr.predict import read_photo, upscale

OUTPUTS = [("string", "image"), ("long", "width"), ("long", "height")]


def read(source: BinaryIO, name: str) -> torch.Tensor:
    """One request's image, read as `lstmvision upscale` reads a file (transparency kept)."""
    return read_photo(source, name)


def answer(net: nn.Module, spec: dict, image: torch.Tensor) -> dict:
    sr = upscale(net, image, spec["data_args"]["scale"])
    pixels = sr.numpy()
    pixels = pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")  # 2 or 4 channels: LA or RGBA, the input's alpha upscaled
    return {"image": base64.b64encode(png.getvalue()).decode("ascii"), "width": sr.shape[2], "height": sr.shape[1]}
