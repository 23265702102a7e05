"""Super-resolution quality under the published protocol.

Protocol (the one behind the SRCNN/VDSR/EDSR tables):
  * both images are 8-bit: the prediction is clamped and rounded to uint8;
  * they are compared on the Y channel of YCbCr (BT.601, MATLAB ``rgb2ycbcr``);
    grayscale images are compared as they are;
  * ``crop`` pixels are removed from every border (usually ``crop = scale``);
  * PSNR uses a peak of 255; SSIM is Wang et al. 2004 (11x11 Gaussian window,
    sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid' filtering) averaged over the map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipeline.imaging.color import luminance
from pipeline.imaging.images import to_8bit


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid, as saving a PNG would."""
    return to_8bit(image).double() / 255


def protocol_y(image: torch.Tensor, crop: int) -> torch.Tensor:
    """Y (8-bit scale, float64) of an image (C, H, W) in [0, 1], quantized and border-cropped."""
    y = luminance(quantize(image.to(torch.float64)))
    if crop > 0:
        y = y[..., crop:-crop, crop:-crop]
    return y


PSNR_CAP = 100.0  # dB: identical images would be infinite; capped as common SR evaluation code does


def psnr_y(pred: torch.Tensor, target: torch.Tensor, crop: int) -> float:
    """PSNR (dB) on Y, peak 255, after cropping ``crop`` pixels from each border; at most ``PSNR_CAP``."""
    a, b = protocol_y(pred, crop), protocol_y(target, crop)
    mse = torch.mean((a - b) ** 2).item()
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / mse))


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_y(pred: torch.Tensor, target: torch.Tensor, crop: int) -> float:
    """SSIM (Wang et al. 2004) on Y after cropping ``crop`` pixels from each border."""
    a = protocol_y(pred, crop)[None, None]
    b = protocol_y(target, crop)[None, None]
    g = _gaussian_1d().to(a.device)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x: torch.Tensor) -> torch.Tensor:
        # The 2-D Gaussian is separable: two 1-D 'valid' passes equal filter2(window, x, 'valid').
        return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return ssim_map.mean().item()

