"""Trainings side by side on a CPU: one forked process per training at once, each on its share of the cores.

One training process does not keep two cores busy (its Python and Lightning work between the kernels is
serial): here two processes of one thread trained the default's classifiers 1.26x and its SR variants 1.65x
faster than one process of two threads. Each training runs on the same number of threads whether it runs
alone or beside others, so what else is pending never changes its bits. The training loop does not import
this module, so how trainings are scheduled is no part of their key; ``trainer.threads`` and
``trainer.parallel``, which decide the threads, are.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import tempfile
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import torch

from pipeline.config.schema import Trainer
from pipeline.core.errors import Interrupted, LstmvisionError
from pipeline.tracking.store import prepare
from pipeline.training.distributed import on_cuda, world_size
from pipeline.training.loop import TrainResult, train, training_lock
from pipeline.training.spec import Places, Training


def cores() -> int:
    """The cores this process may run on (a container or `taskset` may give fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_share(n: int, threads: int | str) -> int:
    """CPU threads of each of ``n`` trainings at once: ``trainer.threads``, with auto an equal share of the cores."""
    return max(1, cores() // n) if threads == "auto" else int(threads)


def side_by_side(cfg: Trainer) -> tuple[int, int] | None:
    """(trainings at once, CPU threads each) on a CPU; None on a GPU or under DDP, where trainings run one at a
    time on the devices the launcher gave them."""
    if on_cuda(cfg) or world_size(cfg) > 1:
        return None
    per = 1 if cfg.threads == "auto" else cfg.threads
    n = max(1, cores() // per) if cfg.parallel == "auto" else cfg.parallel
    return n, thread_share(n, cfg.threads)


def train_alone(t: Training, places: Places) -> TrainResult:
    """One training into its work folder only (a fanout job, a stage's worker): its export's copy in the models
    folder is made in a scratch folder and dropped; whoever records it copies the export from the work folder."""
    with tempfile.TemporaryDirectory() as scratch, training_lock(t, places):
        return train(t, replace(places, models=Path(scratch)))


def train_all(trainings: list[Training], places: Places, n: int, threads: int) -> None:
    """Train ``trainings`` into their work folders, ``n`` at once, each on ``threads`` threads. The first failure
    stops the others (they keep their last checkpoint and mark their runs KILLED) and is raised; a SIGTERM or
    Ctrl-C to this process is passed on to the workers, and the first one's report of it raised."""
    torch.set_num_threads(threads)  # forked workers inherit it
    if len(trainings) <= 1 or n == 1:
        for t in trainings:
            train_alone(t, places)
        return
    context = multiprocessing.get_context("fork")  # a worker starts in milliseconds, not seconds of imports
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        # A worker stops on SIGTERM the way Lightning stops a training, not by this process's handler.
        with ProcessPoolExecutor(min(n, len(trainings)), mp_context=context, initializer=signal.signal,
                                 initargs=(signal.SIGTERM, signal.SIG_DFL)) as pool:
            # The workers are forked before this process ever opens the store (a database connection must not
            # cross a fork), and one of them creates its tables before any training: processes opening a new
            # SQLite store at once race in its schema migration.
            pool.submit(prepare, places.store, sorted({t.task for t in trainings})).result()
            futures = [pool.submit(train_alone, t, places) for t in trainings]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
                signum = None
            except KeyboardInterrupt:
                signum = signal.SIGINT
            except Interrupted:
                signum = signal.SIGTERM
            first = next((f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()), None)
            if first is None and signum is None:
                return
            _stop(pool, futures, signum or signal.SIGTERM)
            if first is None:  # stopped by a signal: the first worker's line says which training, at which epoch
                reports = [f.exception() for f in futures if not f.cancelled() and f.exception()]
                first = next((e for e in reports if isinstance(e, Interrupted)),
                             Interrupted("training stopped; `dvc repro` resumes from the last checkpoints", signum))
            if isinstance(first, BrokenProcessPool):
                raise LstmvisionError("a training process died (killed, or out of memory?); `dvc repro` resumes "
                                      "the unfinished trainings from their last checkpoints") from None
            raise first
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(pool: ProcessPoolExecutor, futures, signum: int) -> None:
    """Cancel what has not started and stop the running trainings with ``signum``, as it stops one; then wait."""
    for f in futures:
        f.cancel()
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):  # a broken pool's workers may be gone already
            os.kill(child.pid, signum)
    pool.shutdown(wait=True, cancel_futures=True)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted("training stopped by SIGTERM; `dvc repro` resumes from the last checkpoints", signum)
