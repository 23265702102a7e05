"""Train one (variant, seed[, scale]) with Lightning, tracked in MLflow, resumable; generic over tasks.

Checkpoints go to a work folder outside DVC's outputs (``.lstmvision/work``),
keyed by what shapes the training (pipeline.training.identity.run_key: params,
seed, and the code it runs), so a killed training is resumed from its last
epoch by the next ``dvc repro`` (DVC deletes a stage's outputs before running
it), and a finished one is reused when the stage re-runs for another reason (a
seed added, a comment edited, packaging changed). The finished model is exported
as a plain state dict plus a JSON description, loadable with ``weights_only=True``.
The task is asked for its data, its LightningModule and its settings through
pipeline.tasks (its ``train`` part).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from PIL import Image

from pipeline import tasks
from pipeline.core.atomic import job_lock
from pipeline.core.errors import Interrupted, LstmvisionError, ParamsError, TrackingError, first_line
from pipeline.tasks.models import build, count_parameters, model_folder, save_model
from pipeline.tracking.store import git_commit, open_run
from pipeline.training.callbacks import Clock, Curves, EpochLine, History
from pipeline.training.distributed import on_cuda, world_size
from pipeline.training.hardware import deterministic_for, lean_determinism, precision_for, use_threads
from pipeline.training.identity import dataset_digest, full_params, launch_tags, run_key, run_params
from pipeline.training.spec import Places, Training

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    seed: int
    scale: int | None
    params_count: int
    train_time_s: float
    epochs: int
    val: float  # the task's validation score (module.monitor) at the exported, last epoch
    history: list[dict]


def quiet_lightning() -> None:
    """Lightning's INFO lines (GPU available, tips) and its own deprecation notices are noise in a pipeline log."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # we resume there
    # On a cluster's login node `srun` exists and Lightning warns at every training started outside a job. Inside
    # one (srun sets SLURM_NTASKS) Lightning takes SLURM's environment; a multi-node training started without
    # a launcher, what the warning guards against, is refused by pipeline.training.distributed.check_launch.
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")


def work_folder(t: Training, places: Places) -> Path:
    """Where a training keeps its checkpoints, curve, MLflow run id and, once finished, its result and export."""
    return places.work / t.run_name / run_key(t)


def result_file(t: Training, places: Places) -> Path:
    """Written once the training finished: its result (the export lies beside it)."""
    return work_folder(t, places) / "result.json"


def training_lock(t: Training, places: Places):
    """Held by whoever trains ``t`` (a stage or a fanout job), so no training runs twice at once."""
    return job_lock(places.work.parent / "locks" / f"train-{t.run_name}.lock", f"training {t.label}")


def train(t: Training, places: Places, rank: int = 0) -> TrainResult | None:
    """Train (or resume, or reuse the finished result of) one training; rank 0 exports it to its model folder
    under ``places.models`` and returns its result.

    Under DDP every process calls this with its global ``rank``; only rank 0 writes anything or talks to
    MLflow, the others train in step and return None.
    """
    work = work_folder(t, places)
    done = result_file(t, places)
    out_dir = model_folder(places.models, t.seed, t.scale)
    if done.exists():  # finished earlier (DVC re-runs a stage when, say, a seed is added)
        if rank != 0:
            return None
        shutil.copytree(work / "export", out_dir, dirs_exist_ok=True)
        return TrainResult(**json.loads(done.read_text()))

    task = tasks.training(t.task)
    quiet_lightning()
    use_threads(t.params.trainer)
    L.seed_everything(t.seed, workers=True, verbose=False)
    dm = task.datamodule(t.variant, t.params, places.prepared, t.seed, t.scale)
    net = build(t.variant.arch, dm.data_args(), t.variant.model)
    module = task.module(net, t.variant.optim, dm.data_args())

    work.mkdir(parents=True, exist_ok=True)
    latest = _latest(work / "checkpoints")
    last = work / "checkpoints" / "last.ckpt"
    resume = _resumable(last, t.run_name)
    if rank != 0:  # another DDP process: it trains, rank 0 keeps the books
        trainer = _trainer(t, [latest], report=False)
        _fit(trainer, module, dm, resume, t.run_name, None)
        return None
    history = History(work / "history.json")
    clock = Clock(work / "elapsed_s", resumed=resume is not None)
    trainer = _trainer(t, [latest, history, clock])  # a bad setting fails before any MLflow run
    run = open_run(places.store, work / "mlflow_run.json", t.task, t.run_name,
                   tags={"variant": t.name, "seed": str(t.seed), "git_commit": git_commit(places.root),
                         "task": t.task, "scale": str(t.scale or ""), **launch_tags()},
                   params=run_params(t))
    folder = places.prepared / task.PREPARED
    folder = folder.relative_to(places.root) if folder.is_absolute() else folder
    data_digest, kind = dataset_digest(places.root, folder)
    run.log_dataset(t.task, data_digest, f"{folder.as_posix()} ({kind})")
    trainer.callbacks.append(Curves(run))
    _fit(trainer, module, dm, resume, t.run_name, run)
    elapsed = clock.total()
    work.mkdir(parents=True, exist_ok=True)  # the work folder may have been deleted meanwhile

    if not last.exists():
        raise LstmvisionError(f"{t.run_name}: checkpoint {last} vanished during training "
                              "(was .lstmvision deleted?); `dvc repro` trains this run again")
    final = torch.load(last, map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("net."): v for k, v in final["state_dict"].items()})
    export = work / "export"
    save_model(net, {"name": t.name, "task": t.task, "arch": t.variant.arch, "view": t.variant.view,
                     "model": t.variant.options(), "data_args": dm.data_args(), "input": dm.input_spec(),
                     "seed": t.seed, "data_seed": t.params.seed}, export)
    (work / "params.json").write_text(json.dumps(full_params(t), indent=1))
    run.log_artifacts(export / "model.pt", export / "model.json", work / "params.json")
    Image.fromarray(dm.example_image()).save(work / "example.png")  # the served model's input example
    images = trainer.global_step * t.variant.optim.batch_size  # every step since the start, resumes included
    run.log_metrics({"params_count": count_parameters(net), "train_time_s": elapsed, "images_per_s": images / elapsed})
    run.end("FINISHED")
    result = TrainResult(run.run_id, t.seed, t.scale, count_parameters(net), round(elapsed, 2),
                         int(trainer.current_epoch), float(history.rows[-1][module.monitor]), history.rows)
    done.write_text(json.dumps(asdict(result)))
    shutil.copytree(export, out_dir, dirs_exist_ok=True)
    return result


def _latest(folder: Path) -> ModelCheckpoint:
    """last.ckpt, written at every epoch's end: what a killed training resumes from and what is exported.

    The export is the last epoch, not the best by validation: the cosine schedule ends at lr 0, so the
    last epoch is the settled one, and picking among epochs on 500 validation digits added seed noise
    (lstm_row, 20 seeds: test accuracy spread 0.60 points exported at the best epoch, 0.43 at the last;
    the gate's power is set by that spread). Not ModelCheckpoint's own ``save_last``: it writes last.ckpt
    only at epochs that also saved a top-k checkpoint (Lightning 2.6)."""
    return ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False)


def _fit(trainer: L.Trainer, module, dm, resume: Path | None, run_name: str, run) -> None:
    """trainer.fit, its failures marked on the MLflow run (when this process has one) and made one line."""
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
    except SystemExit as exc:  # Lightning turns SIGTERM and Ctrl-C into SystemExit
        if run is not None:
            run.end("KILLED")
        signum = signal.SIGTERM if isinstance(exc, SIGTERMException) else signal.SIGINT
        stopped = f"{run_name}: training stopped by {signal.Signals(signum).name} at epoch {trainer.current_epoch + 1}"
        raise Interrupted(f"{stopped}; `dvc repro` resumes from its last checkpoint", signum) from None
    except BaseException as exc:
        if run is not None:
            with contextlib.suppress(TrackingError):  # the store may be what failed: keep the first error
                run.end("FAILED")
        if isinstance(exc, torch.distributed.DistError) or "/gloo/" in str(exc) or "NCCL" in str(exc):
            epoch = trainer.current_epoch + 1
            raise LstmvisionError(f"{run_name}: lost another DDP process at epoch {epoch}") from None
        raise


def _trainer(t: Training, callbacks: list, report: bool = True) -> L.Trainer:
    """The Lightning Trainer; a setting Lightning refuses is a params error (exit 2), not a traceback.

    Under DDP the datamodules shard the batches themselves (pipeline.data.batches.Batches), so
    Lightning's sampler replacement is off, and batch norm uses the statistics of the global batch.
    """
    cfg, cuda, optim = t.params.trainer, on_cuda(t.params.trainer), t.variant.optim
    interactive = report and sys.stderr.isatty()
    ddp = world_size(cfg) > 1
    try:
        trainer = L.Trainer(
            max_epochs=optim.epochs,
            limit_train_batches=optim.max_steps_per_epoch or 1.0,
            gradient_clip_val=optim.grad_clip,
            accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
            strategy="ddp" if ddp and cfg.strategy == "auto" else cfg.strategy,
            use_distributed_sampler=False, sync_batchnorm=ddp,
            precision=precision_for(cfg.precision, cuda), deterministic=deterministic_for(cfg.deterministic, cuda),
            logger=False, callbacks=callbacks + ([EpochLine(t.run_name)] if report and not interactive else []),
            enable_progress_bar=interactive, enable_model_summary=False, num_sanity_val_steps=0,
            log_every_n_steps=1,
        )
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as exc:
        raise ParamsError(f"params.yaml: trainer: {first_line(exc)}") from None
    lean_determinism()
    return trainer


def _resumable(last: Path, run_name: str) -> Path | None:
    """The last checkpoint if it can be read; an unreadable one (cut off by a kill) is discarded with a warning."""
    if not last.exists():
        return None
    try:
        torch.load(last, map_location="cpu", weights_only=False)  # our own file in our work folder
    except Exception as exc:  # any unreadable checkpoint means the same: start this run again
        log.warning("%s: checkpoint %s is unreadable (%s); discarding it and training from the start",
                    run_name, last, type(exc).__name__)
        shutil.rmtree(last.parent, ignore_errors=True)
        (last.parent.parent / "history.json").unlink(missing_ok=True)
        (last.parent.parent / "elapsed_s").unlink(missing_ok=True)
        return None
    log.warning("%s: resuming from %s", run_name, last)
    return last
