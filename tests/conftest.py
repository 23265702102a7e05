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


@pytest.fixture
def project(tmp_path):
    """A copy of the project (code, params, dvc.yaml) in a fresh git repo, as a clone would be."""
    dest = tmp_path / "project"
    ignore = shutil.ignore_patterns(".git", "data", "models", "eval", "reports", "mlflow.db", "mlartifacts",
                                    ".lstmvision", "__pycache__", "*.egg-info", ".pytest_cache", "tmp")
    shutil.copytree(ROOT, dest, ignore=ignore)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def run_cli(args, cwd, env=None, timeout=600):
    """Run the installed `lstmvision` entry point as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None) if env is None or "MLFLOW_TRACKING_URI" not in env else None
    return subprocess.run([sys.executable, "-m", "stages", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
