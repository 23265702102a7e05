"""patches: SR training images in data/raw -> LR/HR Y patch arrays in data/prepared/sr/x<scale>/."""

from __future__ import annotations

import time

import numpy as np

from pipeline.core.atomic import atomic_dir
from pipeline.data.patches import extract_dataset
from pipeline.imaging.images import load_folder
from stages.common import PREPARED, RAW, command, params


@command
def main() -> None:
    """LR/HR Y patches per scale, one memory-mappable array pair per scale."""
    p = params()
    cfg = p.data.sr
    images = [img for name in cfg.train for img in load_folder(RAW / name, min_size=cfg.patch_size)]
    if not images:
        raise FileNotFoundError(f"no usable training images in {', '.join(cfg.train)}")
    megapixels = sum(img.shape[-1] * img.shape[-2] for _, img in images) / 1e6
    with atomic_dir(PREPARED / "sr") as tmp:
        for scale in cfg.scales:
            started = time.perf_counter()
            lr, hr = extract_dataset(images, scale, cfg.patch_size, cfg.stride, cfg.augment, cfg.max_patches, p.seed)
            (tmp / f"x{scale}").mkdir()
            np.save(tmp / f"x{scale}" / "lr.npy", lr)
            np.save(tmp / f"x{scale}" / "hr.npy", hr)
            rate = megapixels / (time.perf_counter() - started)
            print(f"x{scale}: {len(hr)} patches from {len(images)} images ({rate:.1f} HR megapixels/s)")
