"""The IDX format of MNIST and Fashion-MNIST (gzip-compressed), read into arrays."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pipeline.core.errors import SourceError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One .gz IDX file -> its array (magic: two zero bytes, a type code, the number of dimensions)."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _DTYPES:
        raise SourceError(f"{path.name}: not an IDX file")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    array = np.frombuffer(data, _DTYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise SourceError(f"{path.name}: {array.size} values for shape {shape}")
    return array.reshape(shape)


def idx_to_arrays(folder: Path) -> None:
    """train-*/t10k-* IDX files in ``folder`` -> arrays.npz with the published train/test split."""
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        parts[f"x_{split}"] = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz").astype(np.uint8)
        parts[f"y_{split}"] = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    np.savez_compressed(folder / "arrays.npz", **parts)
    for gz in folder.glob("*-ubyte.gz"):
        gz.unlink()
