"""How a training maps onto this machine's hardware: precision and determinism per device, and what a run
records about how it ran."""

from __future__ import annotations

import platform

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment

from pipeline.config.schema import Params, Trainer
from pipeline.training.distributed import batch_per_device, devices_per_node, on_cuda, world_size


def precision_for(setting: str, cuda: bool) -> str:
    """What Lightning runs: ``auto`` is 16-mixed on CUDA, 32-true elsewhere; on a CPU the float16 settings
    become 32-true (Lightning has no float16 autocast for CPUs), and bfloat16 stays (CPUs run it)."""
    if setting == "auto":
        return "16-mixed" if cuda else "32-true"
    return "32-true" if not cuda and setting in ("16-mixed", "16-true") else setting


def deterministic_for(setting: bool, cuda: bool) -> bool | str:
    """On CUDA, ``deterministic: true`` asks for deterministic kernels where they exist and warns where they do
    not (some backward kernels have none); on a CPU every kernel is."""
    return "warn" if setting and cuda else setting


def lean_determinism() -> None:
    """Deterministic mode (set by Lightning's Trainer) also fills every new tensor with NaN, to expose kernels
    that read memory they never wrote. Ours write all they read, so the fill changes no bit and only costs:
    12-20% of an SR training step on CPU (bench: `lsrcnn training step`). Call after making the Trainer."""
    torch.utils.deterministic.fill_uninitialized_memory = False


def use_threads(cfg: Trainer) -> None:
    """This process's CPU threads for a training: ``trainer.threads``, or with auto torch's own choice (all
    cores, or OMP_NUM_THREADS where a fanout job was given its share)."""
    if cfg.threads != "auto":
        torch.set_num_threads(cfg.threads)


def how_it_ran(params: Params, batch_size: int) -> dict:
    """The hardware choices of a run, for its MLflow params: a GPU run says what it did (read after the Trainer
    is made, which sets cuDNN's benchmark mode)."""
    cfg, cuda = params.trainer, on_cuda(params.trainer)
    return {"accelerator": "cuda" if cuda else "cpu", "devices": devices_per_node(cfg), "num_nodes": cfg.num_nodes,
            "world_size": world_size(cfg), "batch_per_device": batch_per_device(batch_size, cfg, "optim"),
            "precision": precision_for(cfg.precision, cuda), "cpu_threads": torch.get_num_threads(),
            "cluster": "slurm" if SLURMEnvironment.detect() else "none",  # Lightning takes SLURM's ranks, requeue
            "deterministic": str(deterministic_for(cfg.deterministic, cuda)).lower(),
            "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
            "cudnn": str(torch.backends.cudnn.version()) if cuda else "none",
            "cudnn_benchmark": str(torch.backends.cudnn.benchmark).lower() if cuda else "none"}
