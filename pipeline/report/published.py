"""Published figures, as data with their source on every row: super-resolution (PSNR/SSIM on Y, border =
scale, MATLAB bicubic degradation; ``catalog/published_sr.csv``) and sequential MNIST classification
(``catalog/published_classification.csv``, full MNIST: 60,000 training images).

The report prints them beside our rows, and a test checks that our bicubic evaluation reproduces the
published bicubic row.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd


def _catalog(name: str) -> pd.DataFrame:
    with resources.files("pipeline.report.catalog").joinpath(name).open() as f:
        return pd.read_csv(f)


def published_sr() -> pd.DataFrame:
    """Every published row: method, set (lower-case, as dataset names in params), scale, psnr, ssim, params, source."""
    return _catalog("published_sr.csv")


def published_classification(views: set[str]) -> pd.DataFrame:
    """The published MNIST rows for the sequence views present (pixels: 784 steps, permuted: the same
    under a fixed pixel permutation): method, view, accuracy, source."""
    table = _catalog("published_classification.csv")
    return table[table.view.isin(views)].reset_index(drop=True)


def published_for(set_name: str, scale: int) -> pd.DataFrame:
    """The published rows of one set and scale (empty when the literature table lacks it)."""
    table = published_sr()
    return table[(table.set == set_name.lower()) & (table.scale == scale)].reset_index(drop=True)
