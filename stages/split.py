"""split: data/raw/<source>/arrays.npz -> data/prepared/classification/{train,val,test}.npz."""

from __future__ import annotations

import numpy as np

from pipeline.core.atomic import atomic_dir
from pipeline.data.split import split_arrays
from stages.common import PREPARED, RAW, command, params


@command
def main() -> None:
    """Seeded, stratified train/val/test split (a published test split is kept as it is)."""
    p = params()
    cfg = p.data.classification
    with np.load(RAW / cfg.source / "arrays.npz") as z:
        arrays = dict(z)
    parts = split_arrays(arrays, cfg.val_fraction, cfg.test_fraction, cfg.limit, p.seed)
    with atomic_dir(PREPARED / "classification") as tmp:
        for name, (xs, ys) in parts.items():
            np.savez(tmp / f"{name}.npz", x=xs, y=ys)
    print(", ".join(f"{len(ys)} {name}" for name, (_, ys) in parts.items()))
