import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data"

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def copy_project(dest: Path) -> Path:
    """A copy of the project's sources and params in a fresh git repo, as a clone would be (no outputs)."""
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


@pytest.fixture
def project(tmp_path):
    return copy_project(tmp_path / "project")


def run_cli(args, cwd, env=None, timeout=600):
    """Run the installed `lstmvision` entry point as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None) if env is None or "MLFLOW_TRACKING_URI" not in env else None
    return subprocess.run([sys.executable, "-m", "stages", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
