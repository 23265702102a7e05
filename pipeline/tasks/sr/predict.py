"""An SR model on any image: Y by the network, Cb/Cr by bicubic, large images in tiles (`lstmvision upscale`,
the served model, the evaluation). Everything comes from model.json, nothing from the training data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from pipeline.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
from pipeline.imaging.images import load_image, to_8bit
from pipeline.imaging.resize import imresize

Upscaler = Callable[[torch.Tensor, int], torch.Tensor]  # LR (C, H, W) in [0,1] -> SR (C, sH, sW)


def y_model_upscaler(net: torch.nn.Module, device: str = "cpu") -> Upscaler:
    """Wrap a Y-channel network as an RGB upscaler (Cb/Cr by bicubic)."""
    net = net.to(device).eval()

    @torch.no_grad()
    def upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
        if lr.shape[0] == 1:
            y = lr
        else:
            ycc = rgb_to_ycbcr(lr) / 255
            y = (ycc[:1] * 255).round() / 255  # the network was trained on 8-bit Y
        y_sr = net(y[None].float().to(device))[0].double().cpu().clamp(0, 1)
        if lr.shape[0] == 1:
            return y_sr
        chroma = imresize(ycc[1:], scale)
        return ycbcr_to_rgb(torch.cat([y_sr, chroma]) * 255)

    return upscale


def read_photo(source: Path | BinaryIO, name: str | None = None) -> torch.Tensor:
    """A user's image as :func:`upscale` takes it (`lstmvision upscale`, the served model): its transparency,
    if any, kept as a last channel."""
    return load_image(source, keep_alpha=True, name=name)


def with_alpha(upscale_colour: Upscaler) -> Upscaler:
    """An upscaler of (colour + alpha) images (2 or 4 channels, alpha last), from one of colour.

    The colour is upscaled premultiplied by its alpha (over black), the alpha plane by bicubic, and the
    colour divided back by the alpha as the 8-bit output stores it: a fully transparent pixel's colour,
    which nobody sees, never bleeds into the visible edge beside it.
    """

    def upscale(image: torch.Tensor, scale: int) -> torch.Tensor:
        colour, alpha = image[:-1], image[-1:]
        premultiplied = upscale_colour(colour * alpha, scale).clamp(0, 1)
        alpha = (imresize(alpha, scale).clamp(0, 1) * 255).round() / 255
        straight = torch.where(alpha > 0, premultiplied / alpha.clamp_min(1 / 255), 0)
        return torch.cat([straight.clamp(0, 1), alpha])

    return upscale


def tiles(image: torch.Tensor, tile: int) -> int:
    """How many tiles :func:`upscale` cuts ``image`` into."""
    return -(-image.shape[1] // tile) * -(-image.shape[2] // tile)


@torch.no_grad()
def upscale(net: torch.nn.Module, image: torch.Tensor, scale: int, tile: int = 256, margin: int = 16,
            device: str = "cpu", tick: Callable[[], object] | None = None) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> 8-bit (C, sH, sW): Y by the network, Cb/Cr bicubic (as the protocol scores);
    2 or 4 channels are colour and alpha (:func:`with_alpha`).

    Large images go through in tiles of ``tile`` LR pixels, each read with ``margin`` pixels of
    context on every side that the output then drops, so memory is bounded by the tile, not the
    photo. An image that fits one tile is upscaled whole, exactly as `benchmark-sr` does. ``tick`` is
    called after each tile (a progress bar).
    """
    upscale_tile = y_model_upscaler(net, device)
    channels, height, width = image.shape
    if channels in (2, 4):
        upscale_tile = with_alpha(upscale_tile)
    out = torch.empty(channels, height * scale, width * scale, dtype=torch.uint8)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            y1, x1 = min(top + tile + margin, height), min(left + tile + margin, width)
            sr = upscale_tile(image[:, y0:y1, x0:x1], scale)
            inner = sr[:, (top - y0) * scale:(min(top + tile, height) - y0) * scale,
                       (left - x0) * scale:(min(left + tile, width) - x0) * scale]
            out[:, top * scale:(top + tile) * scale, left * scale:(left + tile) * scale] = (
                to_8bit(inner))
            if tick:
                tick()
    return out
