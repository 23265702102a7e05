"""Shared fixtures: the project root, a fresh copy of the project, the CLI and DVC as a user runs them,
params edits, a real HTTP file server on 127.0.0.1, and real server processes (an MLflow tracking
server, `mlflow models serve`) on free ports.

Helpers are fixtures (not imports from test modules), so a bare `pytest` collects
without the project root on sys.path.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The local mirror of the SR benchmark sets; tests that need it skip without it."""
    path = ROOT.parent / "shared" / "data"
    if not (path / "Set5").is_dir():
        pytest.skip("no local mirror of Set5/Set14")
    return path


def _copy_project(dest: Path) -> Path:
    """The project's sources and params in a fresh git repo, as a clone would be (no outputs)."""
    outputs = {".git", "data", "models", "eval", "reports", "metrics", "plots", "dvc.lock", "mlflow.db",
               "mlartifacts", ".lstmvision"}  # at the top level only: pipeline/models is source
    anywhere = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache")

    def ignore(folder, names):
        here = Path(folder).resolve()
        top = outputs & set(names) if here == ROOT else set()
        dvc_state = {"cache", "tmp"} & set(names) if here == ROOT / ".dvc" else set()
        return set(anywhere(folder, names)) | top | dvc_state

    shutil.copytree(ROOT, dest, ignore=ignore)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="session")
def copy_project():
    """copy_project(dest): the project's sources in a fresh git repo at dest (for module-scoped fixtures)."""
    return _copy_project


@pytest.fixture
def make_project(tmp_path):
    """make_project(name, profile=None): a fresh copy under tmp_path, optionally with a profile applied."""

    def make(name: str = "project", profile: str | None = None) -> Path:
        from stages.profile import apply_profile

        dest = _copy_project(tmp_path / name)
        if profile:
            apply_profile(dest, profile)
        return dest

    return make


@pytest.fixture
def project(make_project):
    return make_project()


@pytest.fixture
def tiny(make_project):
    return make_project(profile="tiny")


def _env(tracking_uri: str | None, extra: dict | None) -> dict:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", **(extra or {})}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    elif "MLFLOW_TRACKING_URI" not in (extra or {}):
        env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.fixture(scope="session")
def cli():
    """cli(args, cwd, env=None): the `lstmvision` entry point run as a user would, output captured."""

    def run(args, cwd, env=None, timeout=600):
        return subprocess.run([sys.executable, "-m", "stages", *args], cwd=cwd, env=_env(None, env),
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def dvc():
    """dvc(project, *args, tracking_uri=None): a real DVC command in the project copy."""

    def run(project, *args, timeout=600, tracking_uri=None):
        return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=_env(tracking_uri, None),
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def set_params():
    """set_params(project, **{"dotted.key": value}): edit params.yaml of a project copy."""

    def update(project, **updates):
        path = project / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for dotted, value in updates.items():
            node = params
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node[key]
            node[leaf] = value
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    return update


class FileServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1. ``fail[path] = [500, 500]`` answers those codes
    first; ``truncate[path] = n`` cuts the first full response after n bytes; ``trickle[path] = s``
    sends one byte every s seconds."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, list[int]] = defaultdict(list)
        self.truncate: dict[str, int] = {}
        self.trickle: dict[str, float] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if server.fail[self.path]:
                    self.send_error(server.fail[self.path].pop(0))
                    return
                if self.path == "/health":
                    body = b"OK"
                elif self.path in server.files:
                    body = server.files[self.path]
                else:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.truncate.pop(self.path, None)
                payload = body[start:cut] if cut is not None else body[start:]
                if self.path in server.trickle:
                    for i in range(len(payload)):
                        try:
                            self.wfile.write(payload[i:i + 1])
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            return
                        time.sleep(server.trickle[self.path])
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def file_server():
    """A started FileServer, shut down after the test."""
    server = FileServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """free_port(): a TCP port on 127.0.0.1 that nothing listens on."""
    return _free_port


@pytest.fixture
def background():
    """background(args, port, env=None): a server process in its own session, returned once `port`
    accepts connections; every one started is stopped (its whole process group) when the test ends."""
    started = []

    def start(args, port, env=None, timeout=120):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        started.append(proc)
        deadline = time.time() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc
            except OSError:
                assert time.time() < deadline and proc.poll() is None, f"{args[2:4]} did not start listening"
                time.sleep(0.5)

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path, background, free_port):
    """A real `mlflow server` on 127.0.0.1 (SQLite store, proxied artifacts): its tracking URI."""
    port = free_port()
    background([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"], port)
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def commit_all():
    """commit_all(project): commit everything git does not ignore (a project copy starts uncommitted);
    returns the commit's hash."""

    def commit(project: Path) -> str:
        subprocess.run(["git", "add", "-A"], cwd=project, check=True)
        subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qm",
                        "project state"], cwd=project, check=True)
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                              check=True).stdout.strip()

    return commit
