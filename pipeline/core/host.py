"""The host: the machine a figure was measured on (stated beside training times and bench ratios), and
how this process asks its C allocator to treat memory."""

from __future__ import annotations

import ctypes
import os
import platform


def machine() -> str:
    """The machine in one line: OS, architecture, usable CPU cores, GPU, torch version."""
    import torch  # here, so that the CLI can tune the allocator before anything imports torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.system()} {platform.machine()}, {cores} CPU cores, {gpu}, torch {torch.__version__}"


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> None:
    """Have glibc's malloc reuse freed blocks instead of returning them to the kernel.

    By default large blocks are fresh mmaps and freed heap tops are trimmed, so tensors that are
    allocated and freed at every step page-fault in again each time (zeroed by the kernel): on
    2 cores that was 40% of the resize's time. Blocks up to 32 MB (glibc's ceiling) now come
    from the heap, and up to 256 MB of freed memory stays with the process for reuse, so resident
    memory after a peak stays near it instead of falling back. No-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
