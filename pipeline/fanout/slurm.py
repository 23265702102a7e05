"""The SLURM executor: the jobs as one `sbatch` job array, at most N tasks running at once (``%N``), each
task `srun python -m stages train ...` with the resources of ``fanout.slurm``, watched with `squeue` and
`scontrol` until every task has ended. The cluster is whatever `sbatch` sees (SLURM_CONF); the project folder,
its prepared data and the Python environment must be on a filesystem the compute nodes share."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pipeline.config.schema import SlurmJobs
from pipeline.core.errors import Interrupted, LstmvisionError

from .jobs import Job, Outcome, Progress, judge

POLL_S = 2.0
SCRIPT = """#!/bin/bash
{directives}
# One training per array task; threads follow the CPUs SLURM gave it.
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK MKL_NUM_THREADS=$SLURM_CPUS_PER_TASK
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {commands})
eval "exec srun --ntasks=1 $line"
"""


def script(jobs: list[Job], n: int, cfg: SlurmJobs, root: Path, folder: Path) -> Path:
    """The job array's batch script (and its list of commands, one line per task) in ``folder``."""
    commands = folder / "commands.txt"
    commands.write_text("".join(shlex.join(job.command()) + "\n" for job in jobs))
    options = ["--job-name=lstmvision-fanout", f"--array=0-{len(jobs) - 1}%{n}", "--ntasks=1",
               f"--cpus-per-task={cfg.cpus_per_task}", f"--time={cfg.time}", f"--chdir={root}",
               f"--output={folder}/%a.log"]
    options += [f"--partition={cfg.partition}"] if cfg.partition else []
    options += [f"--gres=gpu:{cfg.gpus}"] if cfg.gpus else []
    options += [f"--mem={cfg.mem}"] if cfg.mem else []
    path = folder / "array.sh"
    path.write_text(SCRIPT.format(directives="\n".join(f"#SBATCH {shlex.quote(o)}" for o in options),
                                  commands=shlex.quote(str(commands))))
    return path


def _slurm(*args: str) -> str:
    """A SLURM client command's output; its failure is one line."""
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise LstmvisionError(f"`{args[0]}` did not answer in 60 s: is slurmctld up?") from None
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        raise LstmvisionError(f"`{shlex.join(args[:2])} ...` failed: {why}")
    return out.stdout


def _queued(array: str) -> dict[int, str]:
    """Task index -> state of the array's tasks still in the queue."""
    found = {}
    for line in _slurm("squeue", "-h", "-r", "-j", array, "-o", "%K %T").splitlines():
        index, state = line.split()
        if index.isdigit():
            found[int(index)] = state
    return found


def _ended(array: str) -> dict[int, tuple[str, int | None]]:
    """Task index -> (final state, exit code) of the array's tasks that slurmctld still remembers."""
    found = {}
    for record in _slurm("scontrol", "-o", "show", "job", array).splitlines():
        task = re.search(r"\bArrayTaskId=(\d+)\b", record)
        state = re.search(r"\bJobState=(\S+)", record)
        code = re.search(r"\bExitCode=(\d+):(\d+)", record)
        if task and state:
            found[int(task.group(1))] = (state.group(1), int(code.group(1)) if code else None)
    return found


def run(jobs: list[Job], n: int, cfg: SlurmJobs, root: Path, folder: Path, progress: Progress) -> list[Outcome]:
    if shutil.which("sbatch") is None:
        raise LstmvisionError("sbatch not found: the slurm executor runs where SLURM's client tools are "
                              "(a cluster's login node); or use --executor local")
    batch = script(jobs, n, cfg, root, folder)
    array = _slurm("sbatch", "--parsable", *cfg.extra, str(batch)).strip().split(";")[0]
    print(f"[fanout] submitted SLURM job array {array}: {len(jobs)} trainings, at most {n} at once", flush=True)
    outcomes: dict[int, Outcome] = {}
    running: set[int] = set()
    try:
        while len(outcomes) < len(jobs):
            queued = _queued(array)
            for i in sorted(i for i, state in queued.items() if state == "RUNNING" and i not in running):
                running.add(i)
                progress.started(jobs[i], f"as SLURM job {array}_{i}")
            gone = [i for i in range(len(jobs)) if i not in queued and i not in outcomes]
            if gone:
                ended = _ended(array)
                for i in gone:
                    state, code = ended.get(i, ("ENDED", None))
                    outcomes[i] = judge(jobs[i], code, f"SLURM job {array}_{i} {state}", folder / f"{i}.log")
                    progress.ended(outcomes[i])
            time.sleep(POLL_S if len(outcomes) < len(jobs) else 0)
    except KeyboardInterrupt:
        subprocess.run(["scancel", array], capture_output=True, timeout=60)
        raise Interrupted(f"fanout stopped by SIGINT; SLURM job array {array} cancelled; the stopped trainings "
                          "resume from their checkpoints with the next fanout", signal.SIGINT) from None
    return [outcomes[i] for i in range(len(jobs))]
