"""MATLAB-compatible bicubic ``imresize`` in torch.

Published super-resolution tables make their low-resolution inputs and
bicubic baselines with MATLAB's ``imresize(img, scale, 'bicubic')``: a cubic
kernel with a = -0.5, the kernel widened by 1/scale when shrinking
(antialiasing), symmetric edge padding, and one dimension resized after the
other. Resizing with PIL or ``torch.nn.functional.interpolate`` shifts PSNR
by tenths of a dB, so this module reproduces MATLAB's weights exactly.

Each output pixel has at most ``4 / scale + 1`` non-zero taps, so images are
resized as a banded product (blocks of outputs through one small shared
matrix), not as a dense [out, in] matrix product, and along both axes in
place (no transposed copies). 8-bit data is resized as
MATLAB resizes uint8: in the 0..255 domain, each pass rounded half away from
zero. There the x2 and x4 weights are dyadic, so every sum is exact in
float32 and in any order (ties land exactly on .5, as in MATLAB).
"""

from __future__ import annotations

import functools
import math

import torch


def _cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _kernel(in_len: int, out_len: int, scale: float, antialias: bool, device=None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's taps along one axis: 1-based input positions before edge padding, and float64 weights."""
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel_width /= scale

        def kernel(x):
            return scale * _cubic(scale * x)
    else:
        kernel = _cubic
    x = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)
    # Output pixel x maps to input coordinate u (1-based, pixel centres).
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(dim=1, keepdim=True)
    used = (weights != 0).any(dim=0)  # as MATLAB does, drop taps that are zero for every output
    return idx[:, used].long(), weights[:, used]


def _symmetric(positions: torch.Tensor, in_len: int) -> torch.Tensor:
    """0-based indices of 1-based positions under symmetric padding (-1 -> 0, in_len -> in_len - 1)."""
    period = 2 * in_len
    zero_based = torch.remainder(positions - 1, period)
    return torch.where(zero_based >= in_len, period - 1 - zero_based, zero_based)


def resize_matrix(
    in_len: int,
    out_len: int,
    scale: float,
    antialias: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The [out_len, in_len] matrix MATLAB's imresize applies along one axis (models use it: small,
    differentiable, any device)."""
    positions, weights = _kernel(in_len, out_len, scale, antialias, device)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, _symmetric(positions, in_len), weights)
    return matrix.to(dtype)


def _integer_factor(scale: float) -> int:
    """s for a scale of s or 1/s: the weights then repeat every s outputs, which the banded product needs."""
    factor = scale if scale >= 1 else 1 / scale
    if abs(factor - round(factor)) > 1e-9:
        raise ValueError(f"scale must be an integer or the reciprocal of one, got {scale}")
    return round(factor)


@functools.lru_cache(maxsize=512)
def _banded(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One axis as a banded product: (input rows to gather, shared [block, window] matrix).

    Outputs come in blocks of ``block`` (a multiple of the weights' period); block j reads ``window``
    consecutive edge-padded input positions, always through the same matrix, so the whole pass is one
    gather and one batched matrix product: ``window`` multiply-adds per output instead of ``in_len``.
    """
    factor = _integer_factor(scale)
    period, stride = (factor, 1) if scale >= 1 else (1, factor)
    block = 16 - 16 % period
    positions, weights = _kernel(in_len, max(out_len, block), scale, antialias)
    first = int(positions[:block].min())
    window = int(positions[:block].max()) - first + 1
    matrix = torch.zeros(block, window, dtype=torch.float64)
    matrix.scatter_add_(1, positions[:block] - first, weights[:block])
    blocks = torch.arange(-(-out_len // block))[:, None] * (block * stride // period)
    return _symmetric(first + blocks + torch.arange(window)[None, :], in_len).flatten(), matrix


def _resize_rows(image: torch.Tensor, out_len: int, scale: float, antialias: bool, offset: float) -> torch.Tensor:
    """Resize contiguous ``image`` (N, H, W) along H: each block's input window gathered (rows are
    memory copies), then one batched product with the block matrix, ``offset`` added on the way."""
    gather, matrix = _banded(image.shape[-2], out_len, scale, antialias)
    block, window = matrix.shape
    windows = image.index_select(-2, gather.to(image.device)).view(-1, window, image.shape[-1])
    shared = matrix.to(image.device, image.dtype).expand(windows.shape[0], block, window)
    offset = torch.full((1, 1, 1), offset, dtype=image.dtype, device=image.device)
    out = torch.baddbmm(offset, shared, windows)  # [N * blocks, block, W]
    return out.view(image.shape[0], -1, image.shape[-1])[:, :out_len]


def _resize_columns(image: torch.Tensor, out_len: int, scale: float, antialias: bool, offset: float
                    ) -> torch.Tensor:
    """Resize ``image`` (N, H, W) along W without transposing it: every block's window gathered
    along the row, then one matrix product of all windows with the block matrix. The result may
    hold a few surplus columns past ``out_len`` (the caller's copy drops them)."""
    gather, matrix = _banded(image.shape[-1], out_len, scale, antialias)
    block, window = matrix.shape
    windows = image.index_select(-1, gather.to(image.device)).view(-1, window)  # [N * H * blocks, window]
    offset = torch.full((1, 1), offset, dtype=image.dtype, device=image.device)
    out = torch.addmm(offset, windows, matrix.to(image.device, image.dtype).t())  # [N * H * blocks, block]
    return out.view(*image.shape[:-1], -1)


@functools.lru_cache(maxsize=16)
def _exact_in_float32(scale: float, antialias: bool) -> bool:
    """8-bit data resizes exactly in float32 when every weight is a multiple of 2^-13: each sum then
    needs at most 9 + 13 bits, so no rounding happens in any order (x2 and x4 qualify, x3 does not)."""
    in_len = 16 * _integer_factor(scale) if scale < 1 else 16  # the weights of every phase
    weights = _kernel(in_len, round(in_len * scale), scale, antialias)[1] * 2 ** 13
    return bool(torch.equal(weights, weights.round()))


def imresize(
    image: torch.Tensor,
    scale: float,
    antialias: bool = True,
    quantize: bool = False,
) -> torch.Tensor:
    """Resize ``image`` (..., H, W) by ``scale`` (s or 1/s, s an integer) like MATLAB's bicubic imresize.

    The output size is ``ceil(H * scale) x ceil(W * scale)``. With
    ``quantize=True`` the image is taken as 8-bit data in [0, 1] (put on that
    grid first) and, as
    MATLAB does for uint8 input, the result of each axis pass is rounded
    (half away from zero) to the 8-bit grid and clipped, so the output is
    exactly what a saved PNG holds.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    _integer_factor(scale)  # refuses other scales with a clear message
    *lead, h, w = image.shape
    out_h, out_w = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
    dtype = torch.float32 if quantize and _exact_in_float32(scale, antialias) else torch.float64
    work = image.reshape(-1, h, w).to(dtype, copy=quantize)  # the in-place steps below never touch `image`
    if quantize:
        work.mul_(255).round_()  # the 0..255 grid, exactly (n / 255 reaches float32 inexactly)

    def rounded(t: torch.Tensor) -> torch.Tensor:
        return t.floor_().clamp_(0, 255) if quantize else t  # MATLAB's uint8: offset 0.5, floor, clip

    offset = 0.5 if quantize else 0.0
    # MATLAB resizes the axis with the smaller scale first; equal scales: rows first.
    work = rounded(_resize_rows(work, out_h, scale, antialias, offset).contiguous())
    work = rounded(_resize_columns(work, out_w, scale, antialias, offset))[..., :out_w]
    out = torch.empty(*lead, out_h, out_w, dtype=torch.float64, device=image.device)
    out.view(-1, out_h, out_w).copy_(work)
    out = out.div_(255) if quantize else out  # in float64: n / 255 exactly as the input was made
    return out.to(image.dtype) if image.is_floating_point() else out
