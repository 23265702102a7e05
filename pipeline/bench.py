"""Micro-benchmarks, reported as ratios measured in one run (machine speed cancels out)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from pipeline.models.lstm_gates import GateLSTM
from pipeline.patches import extract_pairs
from pipeline.resize import imresize


def _sync(device: str) -> Callable[[], None]:
    """What waits for queued GPU work, so a timing covers the work itself."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def _timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median seconds of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def lstm_kernels(device: str, batch: int = 64, steps: int = 100, features: int = 64, hidden: int = 512,
                 repeats: int = 5) -> dict:
    """Forward+backward of the gate-equation LSTM against nn.LSTM (cuDNN on a GPU), same weights."""
    torch.manual_seed(0)
    sync = _sync(device)
    ref = nn.LSTM(features, hidden, batch_first=True).to(device)
    ours = GateLSTM(features, hidden).to(device)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(batch, steps, features, device=device)

    def step(module):
        return lambda: module(x)[0].sum().backward()

    t_ref, t_ours = _timed(step(ref), repeats, sync), _timed(step(ours), repeats, sync)
    return {"device": device, "shape": [batch, steps, features, hidden], "nn_lstm_ms": 1000 * t_ref,
            "gate_lstm_ms": 1000 * t_ours, "gate_over_nn_lstm": t_ours / t_ref}


def resize_throughput(device: str, side: int = 512, repeats: int = 5) -> dict:
    """MATLAB-bicubic x1/2 then x2 of an RGB image: megapixels (HR) per second."""
    sync = _sync(device)
    img = torch.rand(3, side, side, dtype=torch.float64, device=device)
    t = _timed(lambda: imresize(imresize(img, 0.5, quantize=True), 2, quantize=True), repeats, sync)
    return {"device": device, "side": side, "hr_megapixels_per_s": side * side / 1e6 / t}


def patch_throughput(side: int = 512, repeats: int = 3) -> dict:
    """SR patch extraction (x2, 48/24, with the 8 flips/rotations): HR megapixels per second."""
    img = torch.rand(3, side, side, dtype=torch.float64)
    t = _timed(lambda: extract_pairs(img, 2, 48, 24, augment=True), repeats, lambda: None)
    return {"side": side, "hr_megapixels_per_s": side * side / 1e6 / t}
