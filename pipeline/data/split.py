"""The classification split: seeded and stratified, or the published test split kept as it is."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.core.errors import SourceError


def split_arrays(arrays: dict[str, np.ndarray], val_fraction: float, test_fraction: float, limit: int | None,
                 seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train"|"val"|"test": (x, y)}; ``limit`` caps the training samples (stratified)."""
    if "x_test" in arrays:  # a published test split (MNIST, Fashion-MNIST) is kept as it is
        x_rest, y_rest, x_test, y_test = arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
        val = val_fraction
    else:
        x_rest, x_test, y_rest, y_test = train_test_split(arrays["x"], arrays["y"], test_size=test_fraction,
                                                          stratify=arrays["y"], random_state=seed)
        val = val_fraction / (1 - test_fraction)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=val, stratify=y_rest,
                                                      random_state=seed)
    if limit and limit < len(x_train):
        if limit < len(np.unique(y_train)):
            raise SourceError(f"data.classification.limit {limit} is smaller than the number of classes")
        x_train, _, y_train, _ = train_test_split(x_train, y_train, train_size=limit, stratify=y_train,
                                                  random_state=seed)
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}
