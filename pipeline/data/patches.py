"""LR/HR training patches for super-resolution, extracted without Python pixel loops.

Each HR image is modcropped to the scale, its LR made with the evaluation's
MATLAB bicubic (8-bit rounded), both converted to Y, and aligned patches cut
on a regular grid with ``unfold``. The eight flips/rotations are optional.
Output: uint8 arrays (N, 1, p, p) for HR and (N, 1, p/s, p/s) for LR.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.imaging.color import luminance
from pipeline.imaging.images import modcrop
from pipeline.imaging.resize import imresize


def _grid(plane: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """All size x size windows of (H, W) at the given stride -> (N, size, size)."""
    return plane.unfold(0, size, stride).unfold(1, size, stride).reshape(-1, size, size)


def _dihedral(p: torch.Tensor) -> torch.Tensor:
    """The 8 flips/rotations of a batch of square patches (N, s, s) -> (8N, s, s)."""
    rots = [torch.rot90(p, k, dims=(1, 2)) for k in range(4)]
    return torch.cat(rots + [r.flip(2) for r in rots])


def to_y8(image: torch.Tensor) -> torch.Tensor:
    """Y of an image in [0, 1], rounded to 8 bits, as float in [0, 255]."""
    return luminance(image).round().clamp(0, 255)


def extract_pairs(image: torch.Tensor, scale: int, patch: int, stride: int,
                  augment: bool) -> tuple[np.ndarray, np.ndarray]:
    """Aligned (LR, HR) uint8 Y patches of one HR image (C, H, W) in [0, 1]."""
    hr = modcrop(image, scale)
    if min(hr.shape[-2:]) < patch:
        empty_lr = np.zeros((0, 1, patch // scale, patch // scale), np.uint8)
        return empty_lr, np.zeros((0, 1, patch, patch), np.uint8)
    lr = imresize(hr, 1 / scale, quantize=True)
    hr_y, lr_y = to_y8(hr), to_y8(lr)
    hr_p = _grid(hr_y, patch, stride - stride % scale or scale)
    lr_p = _grid(lr_y, patch // scale, (stride - stride % scale or scale) // scale)
    if augment:
        hr_p, lr_p = _dihedral(hr_p), _dihedral(lr_p)
    return lr_p.to(torch.uint8)[:, None].numpy(), hr_p.to(torch.uint8)[:, None].numpy()


def extract_dataset(images, scale: int, patch: int, stride: int, augment: bool,
                    max_patches: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Patches of every image, concatenated; a seeded subset when ``max_patches`` caps them."""
    pairs = [extract_pairs(img, scale, patch, stride, augment) for _, img in images]
    lr = np.concatenate([p[0] for p in pairs])
    hr = np.concatenate([p[1] for p in pairs])
    if max_patches is not None and len(lr) > max_patches:
        keep = np.sort(np.random.default_rng(seed).choice(len(lr), max_patches, replace=False))
        lr, hr = lr[keep], hr[keep]
    return lr, hr
