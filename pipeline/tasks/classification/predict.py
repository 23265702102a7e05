"""A classifier on a user's own images, prepared as its training data was (`lstmvision classify`, the
served model): everything comes from model.json, nothing from the training data."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import torch
import torch.nn.functional as F

from pipeline.core.errors import ImageError
from pipeline.imaging.images import load_image
from pipeline.tasks.classification.data import border, pixel_permutation, polarity, sequence_view

# MNIST's own preparation: the digit's bounding box scaled to 20 of 28 pixels, centred by its mass.
_DIGIT_FRACTION = 20 / 28
# A digit ends up 20 pixels tall: an image larger than this on a side is reduced while it is read, so memory
# follows this bound, not the file (a 9000x9000 scan would otherwise be float copies of several GB).
READ_SIDE = 2048
# Ink is what differs from the paper: grey levels spanning less than this fraction of the scale have none.
MIN_SPREAD = 0.05


def read_digit(source: Path | BinaryIO, name: str | None = None) -> torch.Tensor:
    """An image file as :func:`classify` takes it (``load_image``: transparency over white, reduced past
    ``READ_SIDE``); one with no ink to read (uniform, or nearly: see ``MIN_SPREAD``) is an ImageError
    naming ``name`` (default: the path), never a confident answer."""
    image = load_image(source, max_side=READ_SIDE, name=name)
    levels = gray(image)
    spread = float(levels.max() - levels.min())
    if spread < MIN_SPREAD:
        raise ImageError(f"{name or source}: no digit to read: the image is uniform (its grey levels span "
                         f"{spread:.1%} of the scale, less than {MIN_SPREAD:.0%})")
    return image


def gray(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> (H, W), ITU-R 601 luma for colour."""
    if image.shape[0] == 1:
        return image[0]
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype)
    return (image[:3] * weights[:, None, None]).sum(0)


def as_digit(image: torch.Tensor, side: int, wanted: str) -> torch.Tensor:
    """A photo or scan of one digit, any size and either polarity, as the training images look:
    (side, side) in [0, 1], in the ``wanted`` polarity (the image's own told by its edges), ground and ink
    stretched to 0 and 1, the digit's bounding box scaled to 20/28 of the side and centred by its mass."""
    x = gray(image).float()
    if polarity(x) == "dark_on_light":  # work on the digit light on dark, like MNIST
        x = 1 - x
    # Levels: paper is not black nor ink white in a photo; the ground goes to 0, the brightest ink to 1.
    ground = float(border(x).median())
    x = ((x - ground) / max(float(x.max()) - ground, 1e-6)).clamp(0, 1)
    rows, cols = torch.nonzero(x > 0.5 * float(x.max()), as_tuple=True)
    if len(rows):
        x = x[int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
    box = max(1, round(side * _DIGIT_FRACTION))
    factor = box / max(x.shape)
    size = (max(1, round(x.shape[0] * factor)), max(1, round(x.shape[1] * factor)))
    digit = F.interpolate(x[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    digit = digit.clamp(0, 1)
    mass = digit.sum().clamp_min(1e-8)
    centre_y = float((digit.sum(1) * torch.arange(size[0])).sum() / mass)
    centre_x = float((digit.sum(0) * torch.arange(size[1])).sum() / mass)
    top = min(max(round(side / 2 - 0.5 - centre_y), 0), side - size[0])
    left = min(max(round(side / 2 - 0.5 - centre_x), 0), side - size[1])
    canvas = torch.zeros(side, side)
    canvas[top:top + size[0], left:left + size[1]] = digit
    return 1 - canvas if wanted == "dark_on_light" else canvas


@torch.no_grad()
def classify(net: torch.nn.Module, spec: dict, images: list[torch.Tensor]) -> list[tuple[str, float]]:
    """(class name, probability) per image, prepared as the model's training data was."""
    norm = spec["input"]
    side = spec["data_args"]["image_size"]
    batch = torch.stack([as_digit(img, side, norm["polarity"]) for img in images])
    batch = (batch - norm["mean"]) / norm["std"]
    perm = pixel_permutation(side * side, spec["data_seed"]) if spec["view"] == "permuted" else None
    probs = torch.softmax(net.eval()(sequence_view(batch, spec["view"], perm)), dim=-1)
    best = probs.max(dim=-1)
    return [(norm["class_names"][int(i)], float(p)) for p, i in zip(best.values, best.indices, strict=True)]
