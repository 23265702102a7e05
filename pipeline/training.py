"""Train one variant (at one scale for SR) with Lightning, tracked in MLflow, resumable.

Checkpoints go to a work folder outside DVC's outputs (``.lstmvision/work``),
keyed by a hash of everything that shapes the run, so a killed training is
resumed from its last epoch by the next ``dvc repro`` (DVC deletes a stage's
outputs before running it). The finished model is exported as a plain
state dict plus a JSON description, loadable with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from pipeline.config import Params, Variant, flatten, task_of
from pipeline.datamodules import ClassificationDataModule, SRDataModule
from pipeline.lit import module_for
from pipeline.models import build, count_parameters, save_model
from pipeline.tracking import Store, ensure_experiment, git_commit

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
        self.path.write_text(json.dumps(self.rows))


@dataclass
class TrainResult:
    run_id: str
    params_count: int
    train_time_s: float
    epochs: int
    best: float
    history: list[dict]


def precision_for(setting: str) -> str:
    if setting != "auto":
        return setting
    return "16-mixed" if torch.cuda.is_available() else "32-true"


def code_digest(package: Path = Path(__file__).parent) -> str:
    """Hash of the library's source: a checkpoint from other code is never resumed."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_key(name: str, variant: Variant, params: Params, scale: int | None) -> str:
    """Hash of what shapes a training run: a changed param or code starts afresh instead of resuming."""
    shaping = {"name": name, "variant": variant.model_dump(), "seed": params.seed, "scale": scale,
               "data": params.data.model_dump(), "trainer": params.trainer.model_dump(), "code": code_digest()}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:16]


def datamodule_for(variant: Variant, params: Params, prepared: Path, scale: int | None):
    if task_of(variant) == "classification":
        return ClassificationDataModule(prepared / "classification", variant.view, variant.optim.batch_size,
                                        params.seed, params.trainer.num_workers)
    return SRDataModule(prepared / "sr", scale, variant.optim.batch_size, params.data.sr.val_fraction,
                        params.seed, params.trainer.num_workers)


def _quiet_lightning() -> None:
    """Lightning's INFO lines (GPU available, tips) are noise in a pipeline log."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def train(name: str, variant: Variant, params: Params, prepared: Path, out_dir: Path, work_root: Path,
          store: Store, root: Path, scale: int | None = None) -> TrainResult:
    from lightning.pytorch.loggers import MLFlowLogger

    run_name = f"{name}_x{scale}" if scale else name
    _quiet_lightning()
    L.seed_everything(params.seed, workers=True, verbose=False)
    dm = datamodule_for(variant, params, prepared, scale)
    net = build(variant.arch, dm.data_args(), variant.model)
    task = task_of(variant)
    module = module_for(task)(net, variant.optim)

    work = work_root / run_name / run_key(name, variant, params, scale)
    work.mkdir(parents=True, exist_ok=True)
    run_file = work / "mlflow_run_id"
    ensure_experiment(store, task)
    logger = MLFlowLogger(
        experiment_name=task, run_name=run_name, tracking_uri=store.uri,
        run_id=run_file.read_text().strip() if run_file.exists() else None,
        tags={"variant": name, "git_commit": git_commit(root), "task": task, "scale": str(scale or "")},
    )
    run_id = logger.run_id
    run_file.write_text(run_id)
    logger.log_hyperparams({**flatten(variant, f"variants.{name}"), "seed": params.seed,
                            **flatten(params.trainer, "trainer"),
                            **(flatten(params.data.sr, "data.sr") if task == "sr" else
                               flatten(params.data.classification, "data.classification")),
                            "params_count": count_parameters(net)})

    ckpt = ModelCheckpoint(dirpath=work / "checkpoints", filename="best", monitor=module.monitor, mode=module.mode,
                           save_last=True, save_top_k=1)
    history = History(work / "history.json")
    interactive = sys.stderr.isatty()
    trainer = L.Trainer(
        max_epochs=variant.optim.epochs,
        limit_train_batches=variant.optim.max_steps_per_epoch or 1.0,
        gradient_clip_val=variant.optim.grad_clip,
        accelerator=params.trainer.accelerator, devices=params.trainer.devices,
        num_nodes=params.trainer.num_nodes, strategy=params.trainer.strategy,
        precision=precision_for(params.trainer.precision),
        deterministic=params.trainer.deterministic and not torch.cuda.is_available(),
        logger=logger, callbacks=[ckpt, history] + ([] if interactive else [EpochLine(run_name)]),
        enable_progress_bar=interactive, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    last = work / "checkpoints" / "last.ckpt"
    resume = last if last.exists() else None
    if resume:
        log.warning("%s: resuming from %s", run_name, resume)
    started = time.monotonic()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
    except BaseException:
        logger.experiment.set_terminated(run_id, "FAILED")
        raise
    elapsed = time.monotonic() - started + _previous_time(work)
    (work / "elapsed_s").write_text(f"{elapsed:.3f}")

    best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("net."): v for k, v in best["state_dict"].items()})
    save_model(net, {"name": name, "task": task, "arch": variant.arch, "view": variant.view,
                     "model": variant.model, "data_args": dm.data_args(), "seed": params.seed}, out_dir)
    logger.experiment.log_artifact(run_id, str(out_dir / "model.pt"))
    logger.experiment.log_artifact(run_id, str(out_dir / "model.json"))
    return TrainResult(run_id, count_parameters(net), round(elapsed, 2), int(trainer.current_epoch),
                       float(ckpt.best_model_score), history.rows)


def _previous_time(work: Path) -> float:
    """Time spent before a resume is not lost from the reported training time."""
    f = work / "elapsed_s"
    return float(f.read_text()) if f.exists() else 0.0
