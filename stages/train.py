"""train NAME: one variant, once per seed (and per scale for SR) -> models/NAME/, plots/train/NAME.csv.

All seeds run in one process: a train process spends seconds importing torch,
Lightning and MLflow, which one stage per (variant, seed) would pay again and
again. A training finished earlier is reused from the work folder (the seed
was there before, or only comments or packaging changed), so adding a seed
trains only the new one. Each finished training is then packaged as an MLflow
Model and registered, again (without training) when the packaging code
changed. With several devices the command starts one process per device
(pipeline/training/distributed.py) and global rank 0 writes.

With ``--seed`` it is one job of ``lstmvision fanout``: that one training, into
its work folder only (and its MLflow run); the `dvc repro` after the jobs
finds it finished and records it as above.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline.core.atomic import atomic_dir, job_lock, write_json, write_text
from pipeline.tracking.registry import package
from pipeline.tracking.store import resolve_store, run_exists
from pipeline.training.distributed import (
    batch_per_device,
    check_launch,
    devices_per_node,
    global_rank,
    launch_local,
    launched,
    single_process,
)
from pipeline.training.loop import train, training_lock, work_folder
from pipeline.training.runs import variant_trainings
from pipeline.training.spec import Places, Training
from stages.common import MODELS, PLOTS, PREPARED, ROOT, WORK, UsageError, command, names_hint, params

log = logging.getLogger(__name__)


@command
def main(name: str = typer.Argument(..., help=f"a variant of params.yaml, {names_hint('variants')}"),
         # Annotated: called as a function (tests, a driver script) the defaults are None, not typer objects.
         seed: Annotated[int | None, typer.Option(help="only this seed, into its work folder alone (a fanout "
                                                       "job); `dvc repro` records it afterwards")] = None,
         scale: Annotated[int | None, typer.Option(help="with --seed, for SR variants: only this scale")] = None,
         ) -> None:
    """Train variant NAME with Lightning for every seed in params.yaml; every run is tracked in MLflow."""
    p = params()
    if name not in p.variants:
        raise UsageError(f"unknown variant '{name}', expected one of {', '.join(p.variants)}")
    variant = p.variants[name]
    check_launch(p.trainer)
    batch_per_device(variant.optim.batch_size, p.trainer, f"variants.{name}")
    trainings = variant_trainings(name, p)
    if seed is not None or scale is not None:
        _one_job(_pick(trainings, seed, scale), p)
        return
    lock = job_lock(WORK.parent / "locks" / f"train-{name}.lock", f"`lstmvision train {name}`")
    if not launched() and devices_per_node(p.trainer) > 1:
        with lock:
            launch_local(devices_per_node(p.trainer), ["train", name], f"train {name}")
        return
    rank = global_rank()
    if rank != 0:  # trains in step with rank 0, which alone writes and talks to MLflow
        for t in trainings:
            train(t, Places(ROOT, PREPARED, WORK, None, MODELS / name), rank)
        return
    store = resolve_store(p.tracking, ROOT)
    runs, curves = [], []
    with lock if not launched() else contextlib.nullcontext(), atomic_dir(MODELS / name) as tmp:
        places = Places(ROOT, PREPARED, WORK, store, tmp)
        for t in trainings:
            with training_lock(t, places):
                r = train(t, places, rank)
            runs.append({"seed": t.seed, "scale": t.scale, "run_id": r.run_id, "params_count": r.params_count,
                         "train_time_s": r.train_time_s, "epochs": r.epochs, "best_val": r.best})
            curves += [{"seed": t.seed, "scale": t.scale or "", **row} for row in r.history]
            _trained(t, r)
            _package(t, places, r.run_id)
        write_json(tmp / "runs.json", runs)
        write_text(PLOTS / "train" / f"{name}.csv", pd.DataFrame(curves).to_csv(index=False))


def _pick(trainings: list[Training], seed: int | None, scale: int | None) -> Training:
    """The one training a fanout job names."""
    t0 = trainings[0]
    found = [t for t in trainings if t.seed == seed and (scale is None or t.scale == scale)]
    if seed is None or len(found) != 1:
        seeds = ", ".join(str(s) for s in t0.params.seeds)
        scales = sorted({t.scale for t in trainings if t.scale})
        need = f"--seed (one of {seeds})" + (f" and --scale (one of {', '.join(map(str, scales))})" if scales else "")
        raise UsageError(f"train {t0.name}: a single training needs {need}")
    return found[0]


def _one_job(t: Training, p) -> None:
    """One training as a fanout job: its work folder and MLflow run, nothing of DVC's outputs."""
    single_process(p.trainer, "a fanout job")
    store = resolve_store(p.tracking, ROOT)
    with tempfile.TemporaryDirectory() as scratch:  # the export lands in the work folder; this copy is dropped
        places = Places(ROOT, PREPARED, WORK, store, Path(scratch))
        with training_lock(t, places):
            r = train(t, places)
    _trained(t, r)


def _trained(t: Training, r) -> None:
    print(f"{t.label}: best val {r.best:.4f} after {r.epochs} epochs in {r.train_time_s:.0f}s "
          f"(MLflow run {r.run_id})", flush=True)


def _package(t: Training, places: Places, run_id: str) -> None:
    """The finished training as its run's MLflow Model, registered (pipeline/tracking/registry.py)."""
    if not run_exists(places.store, run_id):  # reused from a training tracked in another store, or deleted since
        log.warning("%s: MLflow run %s is not in %s; its model is not registered", t.run_name, run_id,
                    places.store.uri)
        return
    work = work_folder(t, places)
    version = package(places.store, run_id, work / "export", work / "example.png", work / "packaged.json", t.name,
                      t.task, t.scale)
    if version is not None:
        print(f"{t.label}: registered as version {version}", flush=True)
