import math

import pytest
import torch
from skimage import data

from pipeline.imaging.resize import imresize, resize_matrix

# MATLAB's bicubic (a = -0.5) taps for x2 upscaling, at output offsets 1/4 and 3/4 of an input pixel.
X2_TAPS = [-0.0234375, 0.2265625, 0.8671875, -0.0703125]
# Shrinking by 2 widens the kernel to 8 taps: 0.5 * cubic(0.5 * d) at d = +-0.5, +-1.5, +-2.5, +-3.5.
HALF_TAPS = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]


def test_upscale_weights_are_matlab_bicubic_taps():
    m = resize_matrix(10, 20, 2.0)
    row = m[10]  # output pixel 11 (1-based) sits at input coordinate 5.75
    nz = row[row != 0]
    assert torch.allclose(nz, torch.tensor(X2_TAPS, dtype=torch.float64), atol=1e-12)


def test_downscale_weights_are_antialiased():
    m = resize_matrix(20, 10, 0.5)
    nz = m[5][m[5] != 0]
    assert torch.allclose(nz, torch.tensor(HALF_TAPS, dtype=torch.float64), atol=1e-12)


def test_border_uses_symmetric_padding():
    m = resize_matrix(10, 20, 2.0)
    # Output pixel 1 sits at input 0.75 (1-based): taps at -1, 0, 1, 2 with weights
    # X2_TAPS[0..3]; symmetric padding maps -1 -> 2 and 0 -> 1.
    assert torch.allclose(m.sum(dim=1), torch.ones(20, dtype=torch.float64))
    assert m[0, 0] == pytest.approx(X2_TAPS[1] + X2_TAPS[2])
    assert m[0, 1] == pytest.approx(X2_TAPS[0] + X2_TAPS[3])


@pytest.mark.parametrize("shape,scale,expected", [
    ((1, 17, 23), 0.5, (1, 9, 12)),
    ((3, 17, 23), 1 / 3, (3, 6, 8)),
    ((3, 9, 7), 2, (3, 18, 14)),
    ((1, 5, 5), 4, (1, 20, 20)),
])
def test_output_size_is_ceil(shape, scale, expected):
    assert imresize(torch.rand(shape, dtype=torch.float64), scale).shape == expected


def test_constant_image_stays_constant():
    img = torch.full((3, 13, 11), 0.4, dtype=torch.float64)
    for scale in (0.5, 1 / 3, 2, 3):
        assert torch.allclose(imresize(img, scale), img.new_full(imresize(img, scale).shape, 0.4))


def test_colour_channels_resize_independently():
    img = torch.rand(3, 15, 14, dtype=torch.float64)
    out = imresize(img, 0.5)
    for c in range(3):
        assert torch.allclose(out[c], imresize(img[c:c + 1], 0.5)[0])


def test_quantize_rounds_to_8bit_grid():
    out = imresize(torch.rand(1, 16, 16, dtype=torch.float64), 0.5, quantize=True)
    assert torch.allclose(out * 255, (out * 255).round())
    assert out.min() >= 0 and out.max() <= 1


def test_linear_ramp_is_reproduced_inside():
    ramp = torch.arange(32, dtype=torch.float64).repeat(32, 1)[None] / 31
    up = imresize(ramp, 2)
    inner = up[0, 8:-8, 8:-8]
    steps = inner[:, 1:] - inner[:, :-1]
    assert torch.allclose(steps, torch.full_like(steps, 0.5 / 31), atol=1e-12)


def test_batch_and_float32_are_supported():
    img = torch.rand(2, 3, 12, 12)
    out = imresize(img, 0.5)
    assert out.shape == (2, 3, 6, 6) and out.dtype == torch.float32


@pytest.mark.parametrize("scale", [0, -2, 0.7, 2.5])
def test_bad_scale_is_refused(scale):
    with pytest.raises(ValueError):
        imresize(torch.rand(1, 8, 8), scale)


def _matlab_uint8(image: torch.Tensor, scale: float) -> tuple[torch.Tensor, int]:
    """Reference: MATLAB's uint8 imresize written plainly (dense float64 matrices in the 0..255
    domain, each pass rounded half away from zero), and how many exact .5 ties it met."""
    h, w = image.shape[-2:]
    rows = resize_matrix(h, math.ceil(h * scale - 1e-9), scale)
    cols = resize_matrix(w, math.ceil(w * scale - 1e-9), scale)
    raw = rows @ (image * 255)
    ties = int((raw - raw.floor() == 0.5).sum())
    work = torch.floor(raw + 0.5).clamp(0, 255)
    raw = work @ cols.T
    ties += int((raw - raw.floor() == 0.5).sum())
    return torch.floor(raw + 0.5).clamp(0, 255) / 255, ties


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_banded_resize_is_bit_identical_to_the_dense_reference(scale):
    # A real photo (ties and all): down by the scale, then back up, as the evaluation does.
    photo = torch.from_numpy(data.astronaut()[100:301, 150:362]).permute(2, 0, 1).double() / 255
    lr, ties_down = _matlab_uint8(photo, 1 / scale)
    assert torch.equal(imresize(photo, 1 / scale, quantize=True), lr)
    sr, ties_up = _matlab_uint8(lr, scale)
    assert torch.equal(imresize(lr, scale, quantize=True), sr)
    if scale != 3:  # x2 and x4 weights are dyadic: exact .5 ties happen and must round up, as in MATLAB
        assert ties_down + ties_up > 0


def test_unquantized_resize_matches_the_dense_matrices():
    img = torch.rand(2, 3, 37, 29, dtype=torch.float64)
    for scale in (0.5, 1 / 3, 2, 3):
        h, w = img.shape[-2:]
        out = imresize(img, scale)
        dense = resize_matrix(h, out.shape[-2], scale) @ img @ resize_matrix(w, out.shape[-1], scale).T
        assert torch.allclose(out, dense, atol=1e-12)
