"""Reading images into tensors and the crops the SR protocol needs."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import ExifTags, Image, UnidentifiedImageError

from pipeline.core.atomic import output
from pipeline.core.errors import ImageError
from pipeline.imaging.files import list_images

log = logging.getLogger(__name__)

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
GRAY_MODES = ("1", "L", "LA", "La")
# Pixels converted at a time: the work copies stay a few MB however large the image.
_STRIP_PIXELS = 1 << 18
# EXIF orientation -> the transposition that shows the image upright (PIL.ImageOps.exif_transpose's table).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 colour (H, W) or (H, W, C) composited over white by its uint8 alpha (H, W), rounded: what an
    image viewer shows."""
    a = alpha.astype(np.uint16)[..., None] if colour.ndim == 3 else alpha.astype(np.uint16)
    return ((colour * a + (255 - a) * 255 + 127) // 255).astype(np.uint8)


def to_8bit_array(img: Image.Image, keep_alpha: bool = False, sixteen_bit: bool | None = None) -> np.ndarray:
    """uint8 array (H, W) for grayscale or (H, W, 3) for colour, from the PIL modes read faithfully.

    Transparency (an alpha channel, or a palette's or tRNS chunk's transparent entry) is composited over
    white, as a viewer shows it; with ``keep_alpha`` it is kept instead as a last channel, (H, W, 2) or
    (H, W, 4), the colour unpremultiplied. The bit depth comes from the file's mode, never from the
    values: a 16-bit image is scaled from 65535 even when it happens to be dark (``sixteen_bit``: the
    file's verdict, for a crop that no longer knows its format). Floating-point and 32-bit integer
    images have no agreed white level and are refused.
    """
    if sixteen_bit is None:
        sixteen_bit = img.mode in SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG")  # PNG's "I": 16-bit
    transparency = img.info.get("transparency")
    if sixteen_bit:
        values = np.asarray(img)
        colour = np.round(values / 65535.0 * 255).clip(0, 255).astype(np.uint8)
        alpha = None if transparency is None else np.where(values == transparency, 0, 255).astype(np.uint8)
    elif img.mode in ("F", "I") or img.mode.startswith(("I;32", "F;")):
        raise ValueError(f"{img.mode} images (floating point or 32-bit) have no agreed white level; "
                         "convert to 8 or 16 bits")
    elif img.mode in ALPHA_MODES or transparency is not None:
        rgba = np.asarray(img.convert("RGBA"))  # Pillow applies palette, tRNS and premultiplied alpha
        colour, alpha = (rgba[..., 0] if img.mode in GRAY_MODES else rgba[..., :3]), rgba[..., 3]
    else:
        colour, alpha = np.asarray(img.convert("L" if img.mode in GRAY_MODES else "RGB")), None
    if alpha is None:
        return colour
    if keep_alpha:
        return np.dstack([colour, alpha])
    return over_white(colour, alpha)


def read_pixels(img: Image.Image, keep_alpha: bool = False, max_side: int | None = None) -> np.ndarray:
    """An opened image as :func:`to_8bit_array` gives it, upright (its EXIF orientation applied) and, past
    ``max_side`` pixels on its longer side, reduced by the smallest whole factor that fits it (a box
    filter, averaged over the displayed pixels; JPEG decodes at a reduced scale first).

    The file is decoded once at its own depth; conversion and reduction go strip by strip, so the work
    copies stay small, and no float copy of the full image is ever made.
    """
    if max_side and img.format == "JPEG" and max(img.size) > max_side:
        fit = max_side / max(img.size)
        img.draft(None, (max(1, int(img.width * fit)), max(1, int(img.height * fit))))
    img.load()
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    sixteen_bit = img.mode in SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG")
    factor = -(-max(img.size) // max_side) if max_side else 1
    rows = max(1, _STRIP_PIXELS // (img.width * factor)) * factor  # whole blocks per strip
    out = None
    for top in range(0, img.height, rows):
        strip = to_8bit_array(img.crop((0, top, img.width, min(top + rows, img.height))), keep_alpha, sixteen_bit)
        if factor > 1:
            strip = np.asarray(Image.fromarray(strip).reduce(factor))  # alpha kept: premultiplied by Pillow
        if out is None:
            out = np.empty((-(-img.height // factor), *strip.shape[1:]), np.uint8)
        out[top // factor:top // factor + len(strip)] = strip
    if orientation in _UPRIGHT:
        out = np.asarray(Image.fromarray(out).transpose(_UPRIGHT[orientation]))
    return out


def _decoded(path: Path | BinaryIO, keep_alpha: bool, max_side: int | None) -> np.ndarray:
    """:func:`read_pixels` of a file; the decoded image is freed on return, before any float copy (leaving
    `with` only closes a file Pillow opened, and closing the image would close a stream the caller owns)."""
    with warnings.catch_warnings():
        # Pillow only warns up to twice its limit; refused at the limit, what a file can cost is bounded by it
        # (a PNG is decoded whole: 4 bytes a pixel in colour, 0.36 GB at the limit).
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            return read_pixels(img, keep_alpha, max_side)


def load_image(path: Path | BinaryIO, keep_alpha: bool = False, max_side: int | None = None,
               name: str | None = None) -> torch.Tensor:
    """Image as float64 (C, H, W) in [0, 1]; C is 1 for grayscale, 3 otherwise (2 or 4 with ``keep_alpha``
    when the image has transparency, alpha last); past ``max_side`` reduced while read (:func:`read_pixels`).
    Errors are one line naming ``name`` (default: the path).

    Colour images whose three channels are identical stay colour: the protocol
    takes their Y, which is what published tables do for such files.
    """
    label = name or str(path)
    try:
        arr = _decoded(path, keep_alpha, max_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: larger than {Image.MAX_IMAGE_PIXELS} pixels (decompression bomb guard)"
                         ) from None
    except ValueError as exc:
        raise ImageError(f"{label}: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{label}: not a readable image ({exc})") from exc
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
    tensor = torch.from_numpy(arr.astype(np.float64)).div_(255.0)
    return tensor[None] if tensor.ndim == 2 else tensor


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
