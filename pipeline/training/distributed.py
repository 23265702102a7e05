"""Several processes for one training (DDP): how many, which one writes, and starting them on one machine.

A training with ``devices × num_nodes > 1`` runs as that many processes.
On one machine ``lstmvision train`` starts them itself through torch's
elastic agent (what ``torchrun`` runs), so one failing process stops the
others and the stage with one line; across machines the user starts them with
``torchrun`` or SLURM's ``srun`` on every node. Lightning's own launcher is not
used: when a child dies it SIGKILLs the main process, which leaves no message.
Only global rank 0 writes outputs and talks to MLflow.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid

import torch

from pipeline.config.schema import Trainer
from pipeline.core.errors import Interrupted, LstmvisionError, ParamsError


def launched() -> bool:
    """Whether this process is one of several started by a launcher (torchrun, srun, lstmvision itself)."""
    return "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def global_rank() -> int:
    """This process's rank, known before any process group exists (from the launcher's environment)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def on_cuda(cfg: Trainer) -> bool:
    """Whether Lightning will train on CUDA devices with these settings."""
    return cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def devices_per_node(cfg: Trainer) -> int:
    """How many processes one machine runs: the devices Lightning will use ("auto": every GPU, else one)."""
    if isinstance(cfg.devices, list):
        return len(cfg.devices)
    if cfg.devices != "auto":
        return cfg.devices
    return torch.cuda.device_count() if on_cuda(cfg) else 1


def world_size(cfg: Trainer) -> int:
    return devices_per_node(cfg) * cfg.num_nodes


def single_process(cfg: Trainer, what: str) -> None:
    """Refuse DDP settings where one process per training is the point (a fanout job)."""
    if world_size(cfg) > 1 or launched():
        raise ParamsError(f"{what} trains each training in one process on one device (trainer.devices: 1, "
                          "trainer.num_nodes: 1); DDP speeds up one training, fanout runs many")


def batch_per_device(batch_size: int, cfg: Trainer, what: str) -> int:
    """``optim.batch_size`` is the global batch: each process takes an equal share of it."""
    world = world_size(cfg)
    if batch_size % world:
        raise ParamsError(f"{what}: optim.batch_size {batch_size} is the global batch and must divide among "
                          f"{world} processes (devices × num_nodes)")
    return batch_size // world


def check_launch(cfg: Trainer) -> None:
    """A process started by a launcher must be one of exactly the processes params.yaml describes."""
    if not launched():
        if cfg.num_nodes > 1:
            raise ParamsError(f"trainer.num_nodes is {cfg.num_nodes}: start `lstmvision train` on every node with "
                              "torchrun or srun (README: Scaling out)")
        return
    started = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1)
    if started != world_size(cfg):
        raise ParamsError(f"the launcher started {started} processes but params.yaml asks for "
                          f"{devices_per_node(cfg)} devices × {cfg.num_nodes} nodes; make them agree")


def launch_local(n: int, args: list[str], name: str) -> None:
    """Run ``python -m stages ARGS`` as ``n`` DDP processes on this machine and wait for them; a process that
    fails stops the others, and this one reports which and how in one line."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report is ours, below
    if "OMP_NUM_THREADS" not in os.environ:  # n processes share the cores (torchrun's rule, made proportional)
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=f"lstmvision-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.5)
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "stages", *args)
    except ChildFailedError as exc:
        # A process killed by a signal is the cause; the others then fail on the lost connection.
        first = min(exc.failures.values(), key=lambda f: (f.exitcode >= 0, f.timestamp))
        how = (f"was killed by {first.signal_name()}" if first.exitcode < 0
               else f"exited with code {first.exitcode}")
        raise LstmvisionError(f"{name}: DDP process rank {first.local_rank} (pid {first.pid}) {how}; the others were "
                              "stopped; `dvc repro` resumes from the last checkpoint") from None
    except SignalException as exc:
        signum = signal.Signals(exc.sigval)
        raise Interrupted(f"{name}: stopped by {signum.name}; `dvc repro` resumes from the last checkpoint",
                          signum) from None
