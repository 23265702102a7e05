"""split (classification arrays) and patches (SR LR/HR pairs): data/raw -> data/prepared/<task>/."""

from __future__ import annotations

import time

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.atomic import atomic_dir
from pipeline.images import load_folder
from pipeline.patches import extract_dataset
from stages.common import PREPARED, RAW, command, params


@command
def split() -> None:
    """Seeded, stratified train/val/test split (a published test split is kept as it is)."""
    p = params()
    cfg = p.data.classification
    with np.load(RAW / cfg.source / "arrays.npz") as z:
        arrays = dict(z)
    if "x_test" in arrays:  # a published test split (MNIST, Fashion-MNIST) is kept as it is
        x_rest, y_rest, x_test, y_test = arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
        val = cfg.val_fraction
    else:
        x_rest, x_test, y_rest, y_test = train_test_split(arrays["x"], arrays["y"], test_size=cfg.test_fraction,
                                                          stratify=arrays["y"], random_state=p.seed)
        val = cfg.val_fraction / (1 - cfg.test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=val, stratify=y_rest,
                                                      random_state=p.seed)
    if cfg.limit and cfg.limit < len(x_train):
        x_train, _, y_train, _ = train_test_split(x_train, y_train, train_size=cfg.limit, stratify=y_train,
                                                  random_state=p.seed)
    with atomic_dir(PREPARED / "classification") as tmp:
        for name, xs, ys in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
            np.savez(tmp / f"{name}.npz", x=xs, y=ys)
    print(f"classification: {len(x_train)} train, {len(x_val)} val, {len(x_test)} test")


@command
def patches() -> None:
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
