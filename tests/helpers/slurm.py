"""A throw-away single-node SLURM cluster from Debian's packages (slurmctld, slurmd, munge), run as root
with its key, state, logs and ports under one folder. Clients reach it through SLURM_CONF."""

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.processes import free_port

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")


def _program(name: str) -> str | None:
    """The path of a SLURM or munge program (daemons live in /usr/sbin, which a CI user's PATH may lack)."""
    return shutil.which(name) or (str(Path("/usr/sbin", name)) if Path("/usr/sbin", name).exists() else None)


def _absent() -> str | None:
    missing = [d for d in DAEMONS if _program(d) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; apt-get install slurmctld slurmd " \
               "slurm-client munge)"
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root"
    return None


def _config(folder: Path, node: str, munge_socket: Path) -> str:
    cpus = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 * 9 // 10  # slurmd's check
    return "\n".join([
        "ClusterName=lstmvision-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"AuthType=auth/munge\nAuthInfo=socket={munge_socket}",
        "CredType=cred/munge",
        f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "MpiDefault=none",
        "ReturnToService=2",
        "SchedulerType=sched/backfill",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MinJobAge=600",
        "KillWait=5",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n"


def _wait(what: str, ready, timeout: float, log: Path) -> None:
    deadline = time.time() + timeout
    while not ready():
        if time.time() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            pytest.fail(f"{what} did not come up in {timeout:.0f}s:\n{tail}")
        time.sleep(0.5)


@contextlib.contextmanager
def cluster(folder: Path) -> Iterator[dict]:
    """Start munged, slurmctld and slurmd; yield the environment a client needs (SLURM_CONF); stop all three,
    by pid, afterwards."""
    reason = _absent()
    if reason:
        pytest.skip(reason)
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "munge"):
        (folder / sub).mkdir(exist_ok=True)
    os.chmod(folder / "munge", 0o700)
    key, munge_socket = folder / "munge" / "munge.key", folder / "munge" / "socket"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    node = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder, node, munge_socket))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            [_program("munged"), "-F", "--force", f"--socket={munge_socket}", f"--key-file={key}",
             f"--log-file={folder}/munge/munged.log", f"--pid-file={folder}/munge/munged.pid",
             f"--seed-file={folder}/munge/seed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        _wait("munged", munge_socket.exists, 30, folder / "munge" / "munged.log")
        for daemon in ("slurmctld", "slurmd"):
            started.append(subprocess.Popen([_program(daemon), "-D", "-f", str(conf)], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True))

        def node_idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")

        _wait("the SLURM node", node_idle, 60, folder / "slurmctld.log")
        yield env
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
