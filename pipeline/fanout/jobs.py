"""A fanout job (one training), how it ended, and the progress lines the executors print."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.training.spec import Training


@dataclass(frozen=True)
class Job:
    training: Training
    stage: str  # the DVC stage that records it, e.g. train_sr
    done_file: Path  # the training's result in its work folder: present once it finished

    @property
    def name(self) -> str:
        return self.training.run_name

    def command(self) -> list[str]:
        """The train stage restricted to this one training."""
        t = self.training
        return [sys.executable, "-m", "stages", "train", t.name, "--seed", str(t.seed),
                *(["--scale", str(t.scale)] if t.scale else [])]


@dataclass(frozen=True)
class Outcome:
    job: Job
    ok: bool
    why: str  # for a failed job: how it ended and its last line
    log: Path


def last_line(log: Path) -> str:
    """The last non-empty line of a job's log: a stage's one-line error when it failed."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


def judge(job: Job, exit_code: int | None, state: str, log: Path) -> Outcome:
    """A job succeeded when it exited 0 (or its exit code is no longer known) and its training's result exists."""
    if exit_code in (0, None) and job.done_file.exists():
        return Outcome(job, True, "", log)
    how = f"{state}, exit code {exit_code}" if exit_code is not None else state
    return Outcome(job, False, f"{how}: {last_line(log)}", log)


@dataclass
class Progress:
    """One line per job start and finish, with the running count, safe to call from several threads."""

    total: int
    running: int = 0
    finished: int = 0
    starts: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _line(self, text: str) -> None:
        print(f"[fanout] {text} ({self.running} running, {self.finished}/{self.total} done)", flush=True)

    def started(self, job: Job, where: str = "") -> None:
        with self.lock:
            self.running += 1
            self.starts[job.name] = time.monotonic()
            self._line(f"started {job.name}{' ' + where if where else ''}")

    def ended(self, outcome: Outcome) -> None:
        with self.lock:
            began = self.starts.pop(outcome.job.name, None)  # a SLURM job may end between two looks
            self.running -= began is not None
            seconds = time.monotonic() - began if began is not None else 0.0
            self.finished += 1
            if outcome.ok:
                self._line(f"finished {outcome.job.name} in {seconds:.0f}s")
            else:
                self._line(f"FAILED {outcome.job.name}: {outcome.why}; log {outcome.log}")
