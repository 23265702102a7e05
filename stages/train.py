"""train NAME: one variant, once per seed (and per scale for SR) -> models/NAME/, plots/train/NAME.csv.

All seeds run in one process: a train process spends seconds importing torch,
Lightning and MLflow, which one stage per (variant, seed) would pay again and
again. A seed finished earlier is reused from the work folder, so adding a
seed trains only the new one. With several devices the command starts one
process per device (pipeline/training/distributed.py) and global rank 0 writes.
"""

from __future__ import annotations

import contextlib

import pandas as pd
import typer

from pipeline.core.atomic import atomic_dir, job_lock, write_json, write_text
from pipeline.training.distributed import batch_per_device, check_launch, devices_per_node, global_rank, launch_local, launched
from pipeline.tasks.models import model_folder
from pipeline.tracking.store import resolve_store
from pipeline.training.loop import train
from stages.common import MODELS, PLOTS, PREPARED, ROOT, WORK, UsageError, command, names_hint, params


@command
def train_cmd(name: str = typer.Argument(..., help=f"a variant of params.yaml, {names_hint('variants')}")) -> None:
    """Train variant NAME with Lightning for every seed in params.yaml; every run is tracked in MLflow."""
    p = params()
    if name not in p.variants:
        raise UsageError(f"unknown variant '{name}', expected one of {', '.join(p.variants)}")
    variant = p.variants[name]
    check_launch(p.trainer)
    batch_per_device(variant.optim.batch_size, p.trainer, f"variants.{name}")
    lock = job_lock(WORK.parent / "locks" / f"train-{name}.lock", f"`lstmvision train {name}`")
    if not launched() and devices_per_node(p.trainer) > 1:
        with lock:
            launch_local(devices_per_node(p.trainer), ["train", name], f"train {name}")
        return
    trainings = [(seed, scale) for seed in p.seeds for scale in (p.data.sr.scales if variant.task == "sr" else [None])]
    if global_rank() != 0:
        for seed, scale in trainings:
            train(name, variant, p, PREPARED, None, WORK, None, ROOT, seed, scale)
        return
    store = resolve_store(p.tracking, ROOT)
    runs, curves = [], []
    with lock if not launched() else contextlib.nullcontext(), atomic_dir(MODELS / name) as tmp:
        for seed, scale in trainings:
            r = train(name, variant, p, PREPARED, model_folder(tmp, seed, scale), WORK, store, ROOT, seed, scale)
            runs.append({"seed": seed, "scale": scale, "run_id": r.run_id, "params_count": r.params_count,
                         "train_time_s": r.train_time_s, "epochs": r.epochs, "best_val": r.best})
            curves += [{"seed": seed, "scale": scale or "", **row} for row in r.history]
            label = f"{name} x{scale} seed {seed}" if scale else f"{name} seed {seed}"
            print(f"{label}: best val {r.best:.4f} after {r.epochs} epochs in {r.train_time_s:.0f}s "
                  f"(MLflow run {r.run_id})", flush=True)
        write_json(tmp / "runs.json", runs)
        write_text(PLOTS / "train" / f"{name}.csv", pd.DataFrame(curves).to_csv(index=False))
