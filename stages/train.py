"""train TARGET: a task's variants (the stage dvc.yaml runs) or one variant, once per seed (and per scale for
SR) -> models/TASK/NAME/, plots/train/TASK/NAME.csv.

A task's trainings run in one stage: a train process spends seconds importing torch, Lightning and MLflow,
which a stage per variant paid again and again. On a CPU they run side by side, one forked process each
(pipeline/training/parallel.py); on a GPU or under DDP one after another. A training finished earlier is reused
from the work folder (the seed was there before, or only comments or packaging changed), so adding a seed
trains only the new one. Each finished training is then packaged as an MLflow Model and registered, again
(without training) when the packaging code changed. With several devices the command starts one process per
device (pipeline/training/distributed.py) and global rank 0 writes.

With ``--seed`` it is one job of ``lstmvision fanout``: that one training of a variant, into its work folder
only (and its MLflow run); the `dvc repro` after the jobs finds it finished and records it as above.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from pipeline.config.schema import RunLists
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
from pipeline.training.loop import result_file, train, training_lock, work_folder
from pipeline.training.parallel import side_by_side, train_all, train_alone
from pipeline.training.runs import stage_trainings
from pipeline.training.spec import Places, Training
from stages.common import MODELS, PLOTS, PREPARED, ROOT, WORK, UsageError, command, names_hint, params

log = logging.getLogger(__name__)


@command
def main(name: str = typer.Argument(..., help="a task (classification, sr: the variants its `run` list names) "
                                              f"or a variant of params.yaml, {names_hint('variants')}"),
         # Annotated: called as a function (tests, a driver script) the defaults are None, not typer objects.
         seed: Annotated[int | None, typer.Option(help="only this seed of variant NAME, into its work folder "
                                                       "alone (a fanout job); `dvc repro` records it "
                                                       "afterwards")] = None,
         scale: Annotated[int | None, typer.Option(help="with --seed, for SR variants: only this scale")] = None,
         ) -> None:
    """Train a task's variants (or one variant) with Lightning for every seed in params.yaml; every run is
    tracked in MLflow."""
    p = params()
    variants = stage_trainings(name, p)
    whole_task = name in RunLists.model_fields  # else one variant
    check_launch(p.trainer)
    for n in variants:
        batch_per_device(p.variants[n].optim.batch_size, p.trainer, f"variants.{n}")
    if seed is not None or scale is not None:
        if whole_task:
            raise UsageError(f"train {name}: --seed and --scale pick a training of one variant, not of a task")
        _one_job(_pick(variants[name], seed, scale), p)
        return
    task = name if whole_task else p.variants[name].task
    folder = MODELS / task if whole_task else MODELS / task / name  # what this command replaces
    lock = job_lock(WORK.parent / "locks" / f"train-{name}.lock", f"`lstmvision train {name}`")
    if not launched() and devices_per_node(p.trainer) > 1:
        with lock:
            launch_local(devices_per_node(p.trainer), ["train", name], f"train {name}")
        return
    rank = global_rank()
    if rank != 0:  # trains in step with rank 0, which alone writes and talks to MLflow
        for t in (t for trainings in variants.values() for t in trainings):
            train(t, Places(ROOT, PREPARED, WORK, None, folder), rank)
        return
    store = resolve_store(p.tracking, ROOT)
    with lock if not launched() else contextlib.nullcontext(), atomic_dir(folder) as tmp:
        places = Places(ROOT, PREPARED, WORK, store, tmp)
        plan = side_by_side(p.trainer)
        if plan is not None:  # on a CPU: what is not finished yet, side by side, before recording in order
            pending = [t for ts in variants.values() for t in ts if not result_file(t, places).exists()]
            train_all(pending, places, *plan)
        (PLOTS / "train" / task).mkdir(parents=True, exist_ok=True)  # an output even when the task runs nothing
        for n, trainings in variants.items():
            curves = _record(trainings, replace(places, models=tmp / n if whole_task else tmp))
            write_text(PLOTS / "train" / task / f"{n}.csv", pd.DataFrame(curves).to_csv(index=False))


def _record(trainings: list[Training], places: Places) -> list[dict]:
    """A variant's trainings (trained here when not finished) exported to ``places.models`` with its runs.json,
    packaged and registered; returns its learning curves."""
    runs, curves = [], []
    for t in trainings:
        with training_lock(t, places):
            r = train(t, places)
        runs.append({"seed": t.seed, "scale": t.scale, "run_id": r.run_id, "params_count": r.params_count,
                     "train_time_s": r.train_time_s, "epochs": r.epochs, "val": r.val})
        curves += [{"seed": t.seed, "scale": t.scale or "", **row} for row in r.history]
        _trained(t, r)
        _package(t, places, r.run_id)
    write_json(places.models / "runs.json", runs)
    return curves


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
    _trained(t, train_alone(t, Places(ROOT, PREPARED, WORK, store, models=Path("."))))  # models: unused there


def _trained(t: Training, r) -> None:
    print(f"{t.label}: val {r.val:.4f} after {r.epochs} epochs in {r.train_time_s:.0f}s "
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
