"""What identifies a training: the key its checkpoints and result are kept under, and the params, tags
and dataset its MLflow run records."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import yaml

from pipeline import tasks
from pipeline.config.schema import flatten
from pipeline.core.codedeps import closure, digest, source_file
from pipeline.training.hardware import how_it_ran
from pipeline.training.spec import Training


@functools.cache
def code_digest(task: str) -> str:
    """The code a training of ``task`` runs: the training loop and the task's training part, with every project
    module they import (all of them train-stage deps), as code (pipeline.core.codedeps.digest): a comment or
    docstring edit keeps finished trainings, any change to what runs trains afresh. What happens after a
    training (exporting the files, packaging for MLflow, the stage's printing) is not in it, nor are the params
    schemas (params' and the architectures' options): the key holds the validated values they produce, defaults
    filled in, so a new params section or another task's new option retrains nothing.

    Read once per process: the process runs the code it imported, so a file edited while it trains moves
    neither the key its training is kept under nor the folder it is packaged from afterwards."""
    schemas = {source_file("pipeline.config.schema"), source_file("pipeline.config.architectures")}
    return digest([f for f in closure("pipeline.training.loop", *tasks.loaded_by_name(task, "train"))
                   if f not in schemas])


def run_key(t: Training) -> str:
    """Hash of what shapes one training (its params in dvc.yaml, its seed and scale, its code): a change starts
    afresh instead of resuming."""
    shaping = {"name": t.name, "variant": t.variant.model_dump(), "options": t.variant.options(), "seed": t.seed,
               "data_seed": t.params.seed, "scale": t.scale, "data": tasks.training(t.task).shaping_data(t.params),
               "trainer": t.params.trainer.model_dump(), "code": code_digest(t.task)}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_params(t: Training) -> dict:
    """MLflow params under names every variant shares (``hidden``, ``lr``, ``epochs``, ``seed``, ...), so the
    runs table sorts and the compare view lines variants up (tests check that no two sources share a name)."""
    v = t.variant
    return {"variant": t.name, "task": t.task, "arch": v.arch, "view": v.view, "seed": t.seed,
            "data_seed": t.params.seed, "scale": t.scale or "", **v.options(), **v.optim.model_dump(),
            **how_it_ran(t.params, v.optim.batch_size)}


def full_params(t: Training) -> dict:
    """Everything else that shaped the run (trainer, data), flattened: the run's params.json artifact."""
    return {**flatten(t.params.trainer, "trainer"), **flatten(tasks.training(t.task).data_section(t.params), "data")}


def dataset_digest(root: Path, folder: Path) -> tuple[str, str]:
    """(digest, what it is) of a prepared-data folder (relative to the project ``root``): DVC's hash from
    dvc.lock while that entry still describes the folder (same file count and size), else an md5 of its files."""
    files = sorted(f for f in (root / folder).rglob("*") if f.is_file())
    size = sum(f.stat().st_size for f in files)
    lock = root / "dvc.lock"
    entries = yaml.safe_load(lock.read_text()).get("stages", {}).values() if lock.exists() else []
    for out in (o for stage in entries for o in stage.get("outs", [])):
        if Path(out["path"]) == folder and out.get("nfiles") == len(files) and out.get("size") == size:
            return out["md5"], "DVC md5 (dvc.lock)"
    h = hashlib.md5()
    for f in files:
        h.update(f.relative_to(root / folder).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest(), "md5 of the files (no matching dvc.lock entry)"


def launch_tags() -> dict[str, str]:
    """What started the training, for its MLflow run: the DVC experiment when `dvc exp run` (queued or not)
    did (DVC sets these variables for every stage command, so `dvc exp show` and the MLflow runs point at
    each other), and the SLURM job (array task) when a fanout job did, so its log is found from the run."""
    tags = {}
    if os.environ.get("DVC_EXP_NAME"):
        tags |= {"dvc_experiment": os.environ["DVC_EXP_NAME"],
                 "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", "")}
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        tags["slurm_job"] = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    elif os.environ.get("SLURM_JOB_ID"):
        tags["slurm_job"] = os.environ["SLURM_JOB_ID"]
    return tags
