"""Published super-resolution figures (PSNR/SSIM on Y, border = scale, MATLAB bicubic degradation), as data.

The table lives in ``catalog/published_sr.csv`` with its source on every row, so
the report can print it beside our rows and a test can check that our bicubic
evaluation reproduces the published bicubic row.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd


def published_sr() -> pd.DataFrame:
    """Every published row: method, set (lower-case, as dataset names in params), scale, psnr, ssim, params, source."""
    with resources.files("pipeline.catalog").joinpath("published_sr.csv").open() as f:
        return pd.read_csv(f)


def published_for(set_name: str, scale: int) -> pd.DataFrame:
    """The published rows of one set and scale (empty when the literature table lacks it)."""
    table = published_sr()
    return table[(table.set == set_name.lower()) & (table.scale == scale)].reset_index(drop=True)
