import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

from pipeline.imaging.color import luminance, rgb_to_ycbcr, ycbcr_to_rgb
from pipeline.tasks.sr.metrics import PSNR_CAP, protocol_y, psnr_y, ssim_y


def _img(seed, shape=(3, 40, 36)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_y_matches_scikit_image_rgb2ycbcr():
    rgb = _img(0)
    ours = luminance(rgb).numpy()
    theirs = rgb2ycbcr(rgb.permute(1, 2, 0).numpy())[..., 0]
    assert np.allclose(ours, theirs, atol=1e-9)


def test_ycbcr_round_trip():
    rgb = _img(1)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-10)


def test_grayscale_is_used_as_is():
    gray = _img(2, (1, 10, 10))
    assert torch.allclose(luminance(gray), gray[0] * 255)


def test_psnr_of_known_error():
    a = torch.full((1, 20, 20), 100 / 255, dtype=torch.float64)
    b = torch.full((1, 20, 20), 110 / 255, dtype=torch.float64)
    assert psnr_y(a, b, crop=2) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr_y(a, a, crop=2) == PSNR_CAP


def test_border_crop_is_applied():
    a = _img(3)
    b = a.clone()
    b[:, :2, :] = 1 - b[:, :2, :]  # damage only the top two rows
    assert psnr_y(a, b, crop=2) == PSNR_CAP
    assert psnr_y(a, b, crop=1) < 40


def test_prediction_is_rounded_and_clamped():
    target = _img(4)
    off_grid = (target * 255).round() / 255 + 0.3 / 255  # rounds back to the target
    assert psnr_y(off_grid, target, crop=0) == PSNR_CAP
    assert protocol_y(target * 3, 0).max() <= 235.0 + 1e-9


def test_ssim_matches_scikit_image_gaussian_ssim():
    a, b = _img(5, (1, 48, 52)), _img(6, (1, 48, 52)) * 0.3 + _img(5, (1, 48, 52)) * 0.7
    ours = ssim_y(a, b, crop=3)
    ya, yb = protocol_y(a, 3).numpy(), protocol_y(b, 3).numpy()
    theirs = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255)
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert ssim_y(a, a, crop=3) == pytest.approx(1.0)
