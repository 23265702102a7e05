"""Server processes on free ports of 127.0.0.1, each in its own session and stopped with its whole group."""

import os
import signal
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, port, env=None, timeout=120) -> subprocess.Popen:
    """A server process in its own session, returned once `port` accepts connections."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                stop(proc)
                pytest.fail(f"{args[2:5]} did not start listening on {port}")
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Stop a process started by _start, its whole process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
