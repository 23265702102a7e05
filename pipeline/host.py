"""The machine a figure was measured on, stated beside the figure (training times, bench ratios)."""

from __future__ import annotations

import os
import platform

import torch


def machine() -> str:
    """The machine in one line: OS, architecture, usable CPU cores, GPU, torch version."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {platform.machine()}, {cores} CPU cores, {gpu}, torch {torch.__version__}"
