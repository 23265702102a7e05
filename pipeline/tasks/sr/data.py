"""Prepared SR data as torch datasets: <dir>/x<scale>/{lr,hr}.npy uint8 (N, 1, p, p), memory-mapped
(written by the patches stage)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class PatchDataset(Dataset):
    """Memory-mapped uint8 patch pairs, returned as float in [0, 1]; ``i`` is an index or a batch of them."""

    def __init__(self, lr: np.ndarray, hr: np.ndarray, index: np.ndarray):
        self.lr, self.hr, self.index = lr, hr, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        j = self.index[np.asarray(i)]
        return (torch.from_numpy(np.asarray(self.lr[j], dtype=np.float32) / 255),
                torch.from_numpy(np.asarray(self.hr[j], dtype=np.float32) / 255))
