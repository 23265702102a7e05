"""The local executor: one process per job on this machine, at most N at once. On a GPU machine each job gets
one device of its own (CUDA_VISIBLE_DEVICES); on CPU the cores are split between the jobs (torch and OpenMP
threads per job), since trainings that each spin as many threads as there are cores starve one another."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.core.errors import Interrupted
from pipeline.training.parallel import thread_share

from .jobs import Job, Outcome, Progress, judge


def slots(n: int, gpus: int, threads: int | str) -> list[dict[str, str]]:
    """The environment of each of the N concurrent slots: a GPU each (N at most the GPU count), and the CPU
    threads of ``trainer.threads``, with auto an equal share of the cores."""
    threads = str(thread_share(n, threads))
    share = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus:
        return [{**share, "CUDA_VISIBLE_DEVICES": str(i)} for i in range(min(n, gpus))]
    return [share] * n


def run(jobs: list[Job], n: int, gpus: int, threads: int | str, root: Path, logs: Path,
        progress: Progress) -> list[Outcome]:
    free: queue.Queue = queue.Queue()
    ready = slots(n, gpus, threads)
    for slot in ready:
        free.put(slot)
    stopping = threading.Event()
    procs: set[subprocess.Popen] = set()

    def one(job: Job) -> Outcome | None:
        slot = free.get()
        try:
            if stopping.is_set():
                return None
            log = logs / f"{job.name}.log"
            where = f"on GPU {slot['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in slot else ""
            progress.started(job, where)
            with open(log, "w") as fh:
                proc = subprocess.Popen(job.command(), cwd=root, env={**os.environ, **slot}, stdout=fh,
                                        stderr=subprocess.STDOUT)
                procs.add(proc)
                code = proc.wait()
                procs.discard(proc)
            outcome = judge(job, code, "stopped" if stopping.is_set() else "failed", log)
            progress.ended(outcome)
            return outcome
        finally:
            free.put(slot)

    pool = ThreadPoolExecutor(max_workers=len(ready), thread_name_prefix="fanout")
    futures = [pool.submit(one, job) for job in jobs]
    try:
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        # Ctrl-C reached the jobs too (same process group); SIGTERM those that missed it, start no more.
        stopping.set()
        for proc in list(procs):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise Interrupted("fanout stopped by SIGINT; the stopped trainings resume from their checkpoints with the "
                          "next fanout or `dvc repro`", signal.SIGINT) from None
    finally:
        pool.shutdown(wait=True)
