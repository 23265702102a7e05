"""Shared fixtures: the project root, a fresh copy of the project, the CLI and DVC as a user runs them,
params edits, a real HTTP file server on 127.0.0.1, and real server processes on free ports: a throw-away
PostgreSQL cluster, the team's MLflow tracking server on it (`lstmvision team server`), `mlflow models serve`.

Helpers are fixtures (not imports from test modules), so a bare `pytest` collects
without the project root on sys.path.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
        from stages.tools.profile import apply_profile

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


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory, dvc, set_params):
    """The tiny profile after one real `dvc repro` from scratch (a local MLflow store; Set5 asked for but
    absent), made once per session: tests read it through ``reproduced``, a copy of their own."""
    from stages.tools.profile import apply_profile

    project = _copy_project(tmp_path_factory.mktemp("tiny-repro") / "project")
    apply_profile(project, "tiny")
    set_params(project, **{"data.sr.benchmarks": ["set5"], "data.mirror": str(project / "no-mirror")})
    proc = dvc(project, "repro")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return project


@pytest.fixture
def reproduced(tiny_repro, tmp_path):
    """A copy of the reproduced tiny project (outputs, DVC cache, MLflow store), the test's to change. The
    store's experiments keep their absolute artifact folder: a copy's new runs put artifacts in the original."""
    return shutil.copytree(tiny_repro, tmp_path / "project", symlinks=True)


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
    """dvc(project, *args, tracking_uri=None, env=None): a real DVC command in the project copy (env: extra
    variables)."""

    def run(project, *args, timeout=600, tracking_uri=None, env=None):
        return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=_env(tracking_uri, env),
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


def _start(args, port, env=None, timeout=120) -> subprocess.Popen:
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
                _stop(proc)
                pytest.fail(f"{args[2:5]} did not start listening on {port}")
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started by _start, its whole process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def background():
    """background(args, port, env=None): a server process in its own session, returned once `port`
    accepts connections; every one started is stopped (its whole process group) when the test ends."""
    started = []

    def start(args, port, env=None, timeout=120):
        started.append(_start(args, port, env, timeout))
        return started[-1]

    yield start
    for proc in started:
        _stop(proc)


def _postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (not on PATH: /usr/lib/postgresql/N/bin), or any on PATH."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster on 127.0.0.1 and a free port, run as an unprivileged user (PostgreSQL
    refuses root), password authentication: yields (URL without the password, the password)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    run_as = []
    folder = Path(tempfile.mkdtemp(prefix="lstmvision-pg-"))  # under /tmp: reachable by the server's user
    if os.geteuid() == 0:
        user = next(u for u in ("postgres", "nobody") if _has_user(u))
        run_as = ["runuser", "-u", user, "--"]
        os.chown(folder, pwd.getpwnam(user).pw_uid, -1)
    password, port = "throwaway-db-password", _free_port()
    (folder / "pw").write_text(password)
    os.chmod(folder / "pw", 0o644)
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(folder / "data")]
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "mlflow", "-E", "UTF8",
                    "--auth=scram-sha-256", f"--pwfile={folder / 'pw'}"], check=True, capture_output=True)
    subprocess.run([*pg_ctl, "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "-l",
                    str(folder / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"],
                       env={**os.environ, "PGPASSWORD": password}, check=True, capture_output=True)
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow", password
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


class Team:
    """The team's tracking server under test: `lstmvision team server` on PostgreSQL with basic auth, an
    admin and two users. ``env(user)`` is what that user exports to use it."""

    passwords = {"admin": "admin-team-password", "alice": "alice-password-1", "bob": "bob-password-12"}

    def __init__(self, db: str, db_password: str, folder: Path):
        self.db, self.folder, self.uri = db, folder, ""
        self.server_env = {**os.environ, "PGPASSWORD": db_password, "XDG_CACHE_HOME": str(folder),
                           "MLFLOW_AUTH_ADMIN_PASSWORD": self.passwords["admin"],
                           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-key"}

    def server_args(self, port: int) -> list[str]:
        return [sys.executable, "-m", "stages", "team", "server", "--db", self.db, "--artifacts",
                str(self.folder / "artifacts"), "--port", str(port)]

    def env(self, user: str, password: str | None = None, uri: str | None = None) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": uri or self.uri, "MLFLOW_TRACKING_USERNAME": user,
                "MLFLOW_TRACKING_PASSWORD": password or self.passwords[user]}


@pytest.fixture(scope="session")
def team(postgres, tmp_path_factory, cli):
    """The team server, started once per session (`lstmvision team server`), with users alice and bob added
    by the admin through `lstmvision team add-user`."""
    team = Team(*postgres, tmp_path_factory.mktemp("team"))
    port = _free_port()
    proc = _start(team.server_args(port), port, team.server_env, timeout=180)
    team.uri = f"http://127.0.0.1:{port}"
    try:
        for user in ("alice", "bob"):
            added = cli(["team", "add-user", user], ROOT,
                        env={**team.env("admin"), "LSTMVISION_NEW_USER_PASSWORD": team.passwords[user]})
            assert added.returncode == 0, added.stderr
        yield team
    finally:
        _stop(proc)


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
