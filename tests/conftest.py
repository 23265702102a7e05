"""Shared fixtures: the project root, a fresh copy of the project (and one reproduced with the tiny
profile), the CLI and DVC as a user runs them, params edits, and the real servers of tests/helpers/ (an
HTTP file server, server processes on free ports, a throw-away PostgreSQL cluster, the team's MLflow
tracking server on it, a single-node SLURM cluster).

Test modules get helpers as fixtures: pytest puts tests/ on sys.path for conftest.py (so `helpers`
imports here), which a test module cannot count on.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import processes
from helpers.fileserver import FileServer
from helpers.postgres import cluster
from helpers.slurm import cluster as slurm_cluster
from helpers.team import Team

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
        from pipeline.config.profiles import apply_profile

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
    from pipeline.config.profiles import apply_profile

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
        return subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=cwd, env=_env(None, env),
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


@pytest.fixture
def file_server():
    """A started FileServer, shut down after the test."""
    server = FileServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(scope="session")
def free_port():
    """free_port(): a TCP port on 127.0.0.1 that nothing listens on."""
    return processes.free_port


@pytest.fixture
def background():
    """background(args, port, env=None): a server process in its own session, returned once `port`
    accepts connections; every one started is stopped (its whole process group) when the test ends."""
    started = []

    def start(args, port, env=None, timeout=120):
        started.append(processes.start(args, port, env, timeout))
        return started[-1]

    yield start
    for proc in started:
        processes.stop(proc)


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster (helpers.postgres): yields (URL without the password, the password)."""
    with cluster() as found:
        yield found


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A single-node SLURM cluster (helpers.slurm): yields the environment its clients need (SLURM_CONF)."""
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture(scope="session")
def team(postgres, tmp_path_factory, cli):
    """The team server, started once per session (`lstmvision team server`), with users alice and bob added
    by the admin through `lstmvision team add-user`."""
    team = Team(*postgres, tmp_path_factory.mktemp("team"))
    port = processes.free_port()
    proc = processes.start(team.server_args(port), port, team.server_env, timeout=180)
    team.uri = f"http://127.0.0.1:{port}"
    try:
        for user in ("alice", "bob"):
            added = cli(["team", "add-user", user], ROOT,
                        env={**team.env("admin"), "LSTMVISION_NEW_USER_PASSWORD": team.passwords[user]})
            assert added.returncode == 0, added.stderr
        yield team
    finally:
        processes.stop(proc)


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
