"""MLflow: which store, failing fast when it is away, and the run a variant writes to.

The store is MLFLOW_TRACKING_URI when set, else ``tracking.uri`` from params
(default ``sqlite:///mlflow.db``, made absolute against the project root so
that every stage and ``mlflow ui`` see the same file). Local stores get an
explicit artifact folder (``tracking.artifacts``); Lightning would otherwise
fall back to the deprecated ./mlruns file store.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Tracking
from pipeline.errors import TrackingError

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


@dataclass(frozen=True)
class Store:
    uri: str
    artifact_root: str | None  # None: the server decides


def _local(cfg: Tracking, root: Path) -> Store:
    uri = cfg.uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(root / uri.removeprefix('sqlite:///')).resolve()}"
    return Store(uri, (root / cfg.artifacts).resolve().as_uri())


def _reachable(uri: str, timeout: float) -> str | None:
    """None when the server answers /health, else the reason it does not."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as r:
            return None if r.status == 200 else f"HTTP {r.status}"
    except Exception as exc:  # any failure to talk to it means the same to the user
        return str(getattr(exc, "reason", exc))


def resolve_store(cfg: Tracking, root: Path) -> Store:
    """The store to use; checks a remote one answers within ``cfg.timeout_s`` seconds."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if not env or not env.startswith(("http://", "https://")):
        return _local(cfg if not env else cfg.model_copy(update={"uri": env}), root)
    problem = _reachable(env, cfg.timeout_s)
    if problem is None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(cfg.timeout_s, 5))))
        return Store(env, None)
    if cfg.on_unreachable == "local":
        log.warning("MLflow server %s unreachable (%s); logging to the local store %s", env, problem, cfg.uri)
        return _local(cfg, root)
    raise TrackingError(
        f"MLflow server {env} unreachable ({problem}); start it, unset MLFLOW_TRACKING_URI, "
        "or set tracking.on_unreachable: local"
    )


def test_metrics(test: dict, seed: int, scale: int | None) -> dict[str, float]:
    """One run's flat test metrics: ``test_accuracy``, or ``test_<set>_psnr|ssim`` at the run's scale."""
    if scale is None:
        return {"test_accuracy": test["accuracy"]["seeds"][str(seed)]}
    return {f"test_{name}_{key}": value["seeds"][str(seed)]
            for name, per in test.items() for key, value in per[f"x{scale}"].items()}


def log_test_metrics(store: Store, results: list[tuple[list[dict], dict]]) -> None:
    """Attach each variant's test figures to its training runs (one per seed, and per scale for SR).

    ``results`` holds (runs.json entries, test metrics) per variant; one client serves them all.
    """
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(store.uri)
    now = int(time.time() * 1000)
    for runs, test in results:
        for run in runs:
            metrics = [Metric(k, v, now, 0) for k, v in test_metrics(test, run["seed"], run["scale"]).items()]
            client.log_batch(run["run_id"], metrics=metrics)


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
