"""Colour conversions with the constants MATLAB's ``rgb2ycbcr`` uses (ITU-R BT.601)."""

from __future__ import annotations

import torch

_Y = (65.481, 128.553, 24.966)
_CB = (-37.797, -74.203, 112.0)
_CR = (112.0, -93.786, -18.214)


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """Y in [16, 235] (8-bit scale) of an RGB tensor (..., 3, H, W) in [0, 1]."""
    r, g, b = rgb.unbind(dim=-3)
    return 16.0 + _Y[0] * r + _Y[1] * g + _Y[2] * b


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """YCbCr on the 8-bit scale, channels stacked at dim -3."""
    r, g, b = rgb.unbind(dim=-3)
    y = 16.0 + _Y[0] * r + _Y[1] * g + _Y[2] * b
    cb = 128.0 + _CB[0] * r + _CB[1] * g + _CB[2] * b
    cr = 128.0 + _CR[0] * r + _CR[1] * g + _CR[2] * b
    return torch.stack([y, cb, cr], dim=-3)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; returns RGB in [0, 1], unclamped."""
    forward = torch.tensor([_Y, _CB, _CR], dtype=torch.float64)
    inverse = torch.linalg.inv(forward).to(ycbcr.dtype).to(ycbcr.device)
    offset = torch.tensor([16.0, 128.0, 128.0], dtype=ycbcr.dtype, device=ycbcr.device)
    flat = ycbcr.movedim(-3, -1) - offset
    return (flat @ inverse.T).movedim(-1, -3)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y on the 8-bit scale of an image (..., C, H, W) in [0, 1]; grayscale is used as is."""
    if image.shape[-3] == 3:
        return rgb_to_y(image)
    if image.shape[-3] == 1:
        return image[..., 0, :, :] * 255.0
    raise ValueError(f"expected 1 or 3 channels, got {image.shape[-3]}")
