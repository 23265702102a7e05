"""Train one variant (at one scale for SR) with Lightning, tracked in MLflow, resumable.

Checkpoints go to a work folder outside DVC's outputs (``.lstmvision/work``),
keyed by a hash of everything that shapes the run (params, seed, and the
train stage's source files), so a killed training is resumed from its last
epoch by the next ``dvc repro`` (DVC deletes a stage's outputs before running
it), and a finished one is reused when the stage re-runs for another seed. The finished model is exported as a plain
state dict plus a JSON description, loadable with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from PIL import Image

from pipeline.core.codedeps import closure, digest
from pipeline.config.schema import Params, Variant, flatten
from pipeline.tasks.classification.train import ClassificationDataModule, SRDataModule
from pipeline.training.distributed import batch_per_device, devices_per_node, on_cuda, world_size
from pipeline.core.errors import Interrupted, LstmvisionError, ParamsError, TrackingError, first_line
from pipeline.tasks.lit import module_for
from pipeline.tasks.models import build, count_parameters, save_model
from pipeline.tracking.store import Store, git_commit, open_run

log = logging.getLogger(__name__)


class EpochLine(Callback):
    """One log line per epoch: the progress report for non-interactive logs."""

    def __init__(self, name: str):
        self.name, self.start = name, time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(trainer.callback_metrics.items()))
        print(f"[{self.name}] epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {metrics} "
              f"({time.monotonic() - self.start:.0f}s)", flush=True)


class History(Callback):
    """Per-epoch metrics for the DVC plot of the training curve, kept on disk across resumes."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = json.loads(path.read_text()) if path.exists() else []

    def on_train_epoch_end(self, trainer, pl_module):
        row = {"epoch": trainer.current_epoch + 1}
        row.update({k: round(float(v), 6) for k, v in sorted(trainer.callback_metrics.items())})
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self.path.parent.mkdir(parents=True, exist_ok=True)  # the work folder may have been deleted meanwhile
        self.path.write_text(json.dumps(self.rows))


class Curves(Callback):
    """The epoch's training and validation figures to the MLflow run, at step = epoch (1-based), so the
    UI's charts read in epochs like the DVC plots."""

    def __init__(self, run):
        self.run = run

    def on_train_epoch_end(self, trainer, pl_module):
        self.run.log_metrics({k: float(v) for k, v in trainer.callback_metrics.items()}, step=trainer.current_epoch + 1)


class Clock(Callback):
    """Training time across resumes: written at every epoch end, so a killed run's time up to its last
    checkpoint is not lost from the time the resumed run reports."""

    def __init__(self, path: Path, resumed: bool):
        self.path, self.start = path, time.monotonic()
        self.before = float(path.read_text()) if resumed and path.exists() else 0.0

    def total(self) -> float:
        return self.before + time.monotonic() - self.start

    def on_train_epoch_end(self, trainer, pl_module):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{self.total():.3f}")


@dataclass
class TrainResult:
    run_id: str
    seed: int
    scale: int | None
    params_count: int
    train_time_s: float
    epochs: int
    best: float
    history: list[dict]


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


def how_it_ran(params: Params, batch_size: int) -> dict:
    """The hardware choices of a run, for its MLflow params: a GPU run says what it did (read after the Trainer
    is made, which sets cuDNN's benchmark mode)."""
    cfg, cuda = params.trainer, on_cuda(params.trainer)
    return {"accelerator": "cuda" if cuda else "cpu", "devices": devices_per_node(cfg), "num_nodes": cfg.num_nodes,
            "world_size": world_size(cfg), "batch_per_device": batch_per_device(batch_size, cfg, "optim"),
            "precision": precision_for(cfg.precision, cuda),
            "deterministic": str(deterministic_for(cfg.deterministic, cuda)).lower(),
            "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
            "cudnn": str(torch.backends.cudnn.version()) if cuda else "none",
            "cudnn_benchmark": str(torch.backends.cudnn.benchmark).lower() if cuda else "none"}


def code_digest() -> str:
    """Hash of exactly the files the train stage imports (its DVC deps): other code never resumes a checkpoint."""
    return digest(closure("stages.cli", "stages.train"))


def run_key(name: str, variant: Variant, params: Params, seed: int, scale: int | None) -> str:
    """Hash of what shapes one training run (the train stage's params and code in dvc.yaml, and the seed):
    a change starts afresh instead of resuming."""
    data = params.data.sr.patch_settings() if variant.task == "sr" else params.data.classification.model_dump()
    data.pop("scales", None)  # the run's own scale is keyed; the other scales do not shape it
    shaping = {"name": name, "variant": variant.model_dump(), "options": variant.options(), "seed": seed,
               "data_seed": params.seed, "scale": scale, "data": data,
               "trainer": params.trainer.model_dump(), "code": code_digest()}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]


def datamodule_for(variant: Variant, params: Params, prepared: Path, seed: int, scale: int | None):
    if variant.task == "classification":
        return ClassificationDataModule(prepared / "classification", variant.view, variant.optim.batch_size,
                                        params.seed, seed, params.trainer.num_workers)
    return SRDataModule(prepared / "sr", scale, variant.optim.batch_size, params.data.sr.val_fraction,
                        params.seed, seed, params.trainer.num_workers)


def quiet_lightning() -> None:
    """Lightning's INFO lines (GPU available, tips) and its own deprecation notices are noise in a pipeline log."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # we resume there


def run_params(name: str, variant: Variant, params: Params, seed: int, scale: int | None) -> dict:
    """MLflow params under names every variant shares (``hidden``, ``lr``, ``epochs``, ``seed``, ...), so the
    runs table sorts and the compare view lines variants up (tests check that no two sources share a name)."""
    return {"variant": name, "task": variant.task, "arch": variant.arch, "view": variant.view, "seed": seed,
            "data_seed": params.seed, "scale": scale or "", **variant.options(), **variant.optim.model_dump(),
            **how_it_ran(params, variant.optim.batch_size)}


def full_params(variant: Variant, params: Params) -> dict:
    """Everything else that shaped the run (trainer, data), flattened: the run's params.json artifact."""
    data = params.data.sr if variant.task == "sr" else params.data.classification
    return {**flatten(params.trainer, "trainer"), **flatten(data, "data")}


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


def experiment_tags() -> dict[str, str]:
    """The DVC experiment a training belongs to when `dvc exp run` (queued or not) started it: DVC sets
    these variables for every stage command, so `dvc exp show` and the MLflow runs point at each other."""
    name = os.environ.get("DVC_EXP_NAME")
    return {"dvc_experiment": name, "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", "")} if name else {}


def train(name: str, variant: Variant, params: Params, prepared: Path, out_dir: Path | None, work_root: Path,
          store: Store | None, root: Path, seed: int, scale: int | None = None) -> TrainResult | None:
    """Train (or resume, or reuse the finished result of) one (variant, seed, scale) run; export to out_dir.

    Under DDP every process calls this; only the one with ``store`` (global rank 0) writes
    anything: the others get ``out_dir=None, store=None`` and return None.
    """
    run_name = f"{name}_x{scale}_s{seed}" if scale else f"{name}_s{seed}"
    work = work_root / run_name / run_key(name, variant, params, seed, scale)
    done = work / "result.json"
    if done.exists():  # finished earlier (DVC re-runs a stage when, say, a seed is added)
        if out_dir is None:
            return None
        shutil.copytree(work / "export", out_dir, dirs_exist_ok=True)
        return TrainResult(**json.loads(done.read_text()))

    quiet_lightning()
    L.seed_everything(seed, workers=True, verbose=False)
    dm = datamodule_for(variant, params, prepared, seed, scale)
    net = build(variant.arch, dm.data_args(), variant.model)
    module = module_for(variant.task, net, variant.optim, dm.data_args())

    work.mkdir(parents=True, exist_ok=True)
    ckpt = ModelCheckpoint(dirpath=work / "checkpoints", filename="best", monitor=module.monitor, mode=module.mode,
                           save_last=True, save_top_k=1)
    resume = _resumable(work / "checkpoints" / "last.ckpt", run_name)
    if store is None:  # another DDP process: it trains, rank 0 keeps the books
        trainer = _trainer(variant, params, [ckpt], run_name, report=False)
        _fit(trainer, module, dm, resume, run_name, None)
        return None
    history = History(work / "history.json")
    clock = Clock(work / "elapsed_s", resumed=resume is not None)
    trainer = _trainer(variant, params, [ckpt, history, clock], run_name)  # a bad setting fails before any MLflow run
    run = open_run(store, work / "mlflow_run.json", variant.task, run_name,
                   tags={"variant": name, "seed": str(seed), "git_commit": git_commit(root), "task": variant.task,
                         "scale": str(scale or ""), **experiment_tags()},
                   params=run_params(name, variant, params, seed, scale))
    folder = prepared / variant.task
    folder = folder.relative_to(root) if folder.is_absolute() else folder
    data_digest, kind = dataset_digest(root, folder)
    run.log_dataset(variant.task, data_digest, f"{folder.as_posix()} ({kind})")
    trainer.callbacks.append(Curves(run))
    _fit(trainer, module, dm, resume, run_name, run)
    elapsed = clock.total()
    work.mkdir(parents=True, exist_ok=True)  # the work folder may have been deleted meanwhile

    if not Path(ckpt.best_model_path).exists():
        raise LstmvisionError(f"{run_name}: checkpoint {ckpt.best_model_path} vanished during training "
                              "(was .lstmvision deleted?); `dvc repro` trains this run again")
    best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("net."): v for k, v in best["state_dict"].items()})
    export = work / "export"
    save_model(net, {"name": name, "task": variant.task, "arch": variant.arch, "view": variant.view,
                     "model": variant.options(), "data_args": dm.data_args(), "input": dm.input_spec(), "seed": seed,
                     "data_seed": params.seed}, export)
    (work / "params.json").write_text(json.dumps(full_params(variant, params), indent=1))
    run.log_artifacts(export / "model.pt", export / "model.json", work / "params.json")
    Image.fromarray(dm.example_image()).save(work / "example.png")
    run.log_model(export, work / "example.png", name, variant.task, scale)
    images = trainer.global_step * variant.optim.batch_size  # every step since the start, resumes included
    run.log_metrics({"params_count": count_parameters(net), "train_time_s": elapsed, "images_per_s": images / elapsed})
    run.end("FINISHED")
    result = TrainResult(run.run_id, seed, scale, count_parameters(net), round(elapsed, 2), int(trainer.current_epoch),
                         float(ckpt.best_model_score), history.rows)
    done.write_text(json.dumps(asdict(result)))
    shutil.copytree(export, out_dir, dirs_exist_ok=True)
    return result


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


def _trainer(variant: Variant, params: Params, callbacks: list, run_name: str, report: bool = True) -> L.Trainer:
    """The Lightning Trainer; a setting Lightning refuses is a params error (exit 2), not a traceback.

    Under DDP the datamodules shard the batches themselves (pipeline.tasks.classification.data.Batches), so
    Lightning's sampler replacement is off, and batch norm uses the statistics of the global batch.
    """
    cfg, cuda = params.trainer, on_cuda(params.trainer)
    interactive = report and sys.stderr.isatty()
    ddp = world_size(cfg) > 1
    try:
        return L.Trainer(
            max_epochs=variant.optim.epochs,
            limit_train_batches=variant.optim.max_steps_per_epoch or 1.0,
            gradient_clip_val=variant.optim.grad_clip,
            accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
            strategy="ddp" if ddp and cfg.strategy == "auto" else cfg.strategy,
            use_distributed_sampler=False, sync_batchnorm=ddp,
            precision=precision_for(cfg.precision, cuda), deterministic=deterministic_for(cfg.deterministic, cuda),
            logger=False, callbacks=callbacks + ([EpochLine(run_name)] if report and not interactive else []),
            enable_progress_bar=interactive, enable_model_summary=False, num_sanity_val_steps=0,
            log_every_n_steps=1,
        )
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as exc:
        raise ParamsError(f"params.yaml: trainer: {first_line(exc)}") from None


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
