"""fanout: the trainings `dvc repro TARGETS` would run, as parallel jobs here or on SLURM, then that
`dvc repro`, which finds them finished and records them (pipeline/fanout)."""

from __future__ import annotations

import enum
import subprocess
import sys
import time

import typer

from pipeline.core.errors import LstmvisionError
from pipeline.fanout import local, plan, slurm
from pipeline.fanout.jobs import Progress
from pipeline.tracking.store import prepare, resolve_store
from pipeline.training.distributed import on_cuda, single_process
from pipeline.training.loop import training_lock
from pipeline.training.spec import Places
from stages.common import PREPARED, ROOT, WORK, command, params


class Executor(str, enum.Enum):
    local = "local"
    slurm = "slurm"


def _dvc_repro(targets: list[str], what: str) -> None:
    code = subprocess.run([sys.executable, "-m", "dvc", "repro", *targets], cwd=ROOT).returncode
    if code != 0:
        raise LstmvisionError(f"`dvc repro {' '.join(targets)}` ({what}) failed with exit code {code}")


@command
def fanout_cmd(
    targets: list[str] = typer.Argument(None, help="stages as for `dvc repro` (none: the whole pipeline)"),
    executor: Executor = typer.Option(Executor.local, help="local: processes on this machine; slurm: a job array"),
    jobs: int = typer.Option(2, min=1, help="at most this many trainings at once"),
) -> None:
    """Run the trainings `dvc repro TARGETS` would run as parallel jobs, then `dvc repro TARGETS`."""
    targets = targets or []
    p = params()
    single_process(p.trainer, "fanout")
    before, trains = plan.train_stages(ROOT, targets)
    if before:
        _dvc_repro(before, "the data the trainings read")
    places = Places(ROOT, PREPARED, WORK, None, ROOT / "models")
    todo = plan.pending({s: trains[s] for s in plan.stale(ROOT, list(trains))}, p, places)
    busy = [job for job in todo if _busy(job, places)]
    if busy:
        raise LstmvisionError(f"{', '.join(j.name for j in busy)}: already being trained by another process; "
                              "wait for it, then run fanout again")
    if todo:
        store = resolve_store(p.tracking, ROOT)
        prepare(store, sorted({job.training.task for job in todo}))
        logs = ROOT / ".lstmvision" / "fanout" / time.strftime("%Y%m%d-%H%M%S")
        logs.mkdir(parents=True, exist_ok=True)
        print(f"[fanout] {len(todo)} trainings, {executor.value} executor, at most {jobs} at once; logs in "
              f"{logs.relative_to(ROOT)}", flush=True)
        progress = Progress(len(todo))
        if executor is Executor.slurm:
            outcomes = slurm.run(todo, jobs, p.fanout.slurm, ROOT, logs, progress)
        else:
            import torch

            gpus = torch.cuda.device_count() if on_cuda(p.trainer) else 0
            outcomes = local.run(todo, jobs, gpus, p.trainer.threads, ROOT, logs, progress)
        failed = [o for o in outcomes if not o.ok]
        for o in failed:
            typer.echo(f"error: {o.job.name} ({o.job.stage}) failed: {o.why}; log {o.log}", err=True)
        if failed:
            raise LstmvisionError(f"{len(failed)} of {len(outcomes)} trainings failed (above); the others are kept, "
                                  "and the next fanout resumes the failed ones from their checkpoints")
    else:
        print("[fanout] every training is finished already", flush=True)
    _dvc_repro(targets, "recording the trainings")


def _busy(job, places: Places) -> bool:
    """Whether another process holds the training's lock now."""
    try:
        with training_lock(job.training, places):
            return False
    except LstmvisionError:
        return True
