"""Reading images into tensors and the crops the SR protocol needs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.atomic import output
from pipeline.core.errors import ImageError
from pipeline.imaging.files import list_images

log = logging.getLogger(__name__)

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def to_8bit_array(img: Image.Image) -> np.ndarray:
    """uint8 array (H, W) for grayscale or (H, W, 3) for colour, from the PIL modes read faithfully.

    The bit depth comes from the file's mode, never from the values: a 16-bit
    image is scaled from 65535 even when it happens to be dark. Floating-point
    and 32-bit integer images have no agreed white level and are refused.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):  # PNG's "I" is its 16-bit gray
        arr = np.asarray(img, dtype=np.float64)
        return np.round(arr / 65535.0 * 255).clip(0, 255).astype(np.uint8)
    if img.mode in ("F", "I") or img.mode.startswith(("I;32", "F;")):
        raise ValueError(f"{img.mode} images (floating point or 32-bit) have no agreed white level; "
                         "convert to 8 or 16 bits")
    if img.mode in ("L", "1"):
        return np.asarray(img.convert("L"))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on black: a transparent pixel carries no colour to super-resolve.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def load_image(path: Path | BinaryIO) -> torch.Tensor:
    """Image as float64 (C, H, W) in [0, 1]; C is 1 for grayscale, 3 otherwise.

    Colour images whose three channels are identical stay colour: the protocol
    takes their Y, which is what published tables do for such files.
    """
    try:
        with Image.open(path) as img:
            img.load()
            arr = to_8bit_array(img)
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: larger than {Image.MAX_IMAGE_PIXELS} pixels (decompression bomb guard)") from None
    except ValueError as exc:
        raise ImageError(f"{path}: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
    tensor = torch.from_numpy(arr.astype(np.float64) / 255.0)
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def to_8bit(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> uint8, clamped and rounded, as a saved PNG holds it."""
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def save_image(tensor: torch.Tensor, path: Path) -> None:
    """Save (C, H, W) as an 8-bit PNG (uint8 as is, floats in [0, 1] rounded) through
    :func:`pipeline.core.atomic.output`: an interrupted save never leaves a truncated file, and only a
    regular file is replaced."""
    if tensor.dtype != torch.uint8:
        tensor = to_8bit(tensor)
    arr = tensor.cpu().numpy()
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    with output(path, "wb") as fh:
        Image.fromarray(arr).save(fh, format="PNG")


def iter_folder(folder: Path, min_size: int = 1) -> Iterator[tuple[str, torch.Tensor]]:
    """Every readable image in ``folder`` at least ``min_size`` pixels on each side, one at a time
    (an evaluation holds one image in memory however large the set).

    Unreadable or too-small files are skipped with a warning naming them, so one
    bad file does not stop an evaluation or a patch extraction.
    """
    for path in list_images(folder):
        try:
            image = load_image(path)
        except ImageError as exc:
            log.warning("skipping %s", exc)
            continue
        if min(image.shape[-2:]) < min_size:
            log.warning("skipping %s: %dx%d is smaller than %d pixels", path, *image.shape[-2:], min_size)
            continue
        yield path.stem, image


def load_folder(folder: Path, min_size: int = 1) -> list[tuple[str, torch.Tensor]]:
    """:func:`iter_folder` as a list, for what needs every image at once (patch extraction)."""
    return list(iter_folder(folder, min_size))


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right so both sides are multiples of ``scale``."""
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]
