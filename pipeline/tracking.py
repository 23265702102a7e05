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
from pipeline.errors import TrackingError, first_line

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
LOCAL_URI = "sqlite:///mlflow.db"
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
    """The store to use: MLFLOW_TRACKING_URI, else ``tracking.uri``. A server (from either) must answer
    /health within ``cfg.timeout_s`` seconds; otherwise stop, or with ``on_unreachable: local`` fall back
    to the local store (``tracking.uri`` when that is local, else ``sqlite:///mlflow.db``)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = env or cfg.uri
    fallback = cfg.uri if not cfg.uri.startswith(("http://", "https://")) else LOCAL_URI
    if not uri.startswith(("http://", "https://")):
        return _local(cfg.model_copy(update={"uri": uri}), root)
    problem = _reachable(uri, cfg.timeout_s)
    if problem is None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(cfg.timeout_s, 5))))
        return Store(uri, None)
    if cfg.on_unreachable == "local":
        log.warning("MLflow server %s unreachable (%s); logging to the local store %s", uri, problem, fallback)
        return _local(cfg.model_copy(update={"uri": fallback}), root)
    where = "unset MLFLOW_TRACKING_URI" if env else "change tracking.uri"
    raise TrackingError(f"MLflow server {uri} unreachable ({problem}); start it, {where}, "
                        "or set tracking.on_unreachable: local")


def open_run(store: Store, run_file: Path, experiment: str, run_name: str, tags: dict, params: dict):
    """The MLflow run (as a Lightning logger) a training writes to, with its params logged.

    ``run_file`` remembers the run id together with the store it lives in, so a
    resumed training continues its run; when the store changed, or the run was
    deleted, a new run starts and the log says so. Any failure of the store
    (locked or read-only database, server error) is one line.
    """
    import json

    from lightning.pytorch.loggers import MLFlowLogger

    recorded = json.loads(run_file.read_text()) if run_file.exists() else {}
    run_id = recorded.get("run_id") if recorded.get("uri") == store.uri else None
    if recorded and run_id is None:
        log.warning("%s: its MLflow run lives in another store (%s); starting a new run in %s",
                    run_name, recorded.get("uri"), store.uri)
    try:
        if run_id is not None and not _run_exists(store, run_id):
            log.warning("%s: MLflow run %s is gone from %s; starting a new run", run_name, run_id, store.uri)
            run_id = None
        logger = MLFlowLogger(experiment_name=experiment, run_name=run_name, tracking_uri=store.uri,
                              artifact_location=store.artifact_root and f"{store.artifact_root}/{experiment}",
                              run_id=run_id, tags=tags)
        logger.log_hyperparams(params)
    except Exception as exc:  # the store's failures come as many types; all mean the same to the user
        raise TrackingError(f"MLflow store {store.uri}: {first_line(exc)}") from None
    run_file.write_text(json.dumps({"uri": store.uri, "run_id": logger.run_id}))
    return logger


def _run_exists(store: Store, run_id: str) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient(store.uri).get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


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
            if not _run_exists(store, run["run_id"]):  # trained against another store, or deleted since
                log.warning("MLflow run %s is not in %s; its test metrics are not attached", run["run_id"], store.uri)
                continue
            metrics = [Metric(k, v, now, 0) for k, v in test_metrics(test, run["seed"], run["scale"]).items()]
            try:
                client.log_batch(run["run_id"], metrics=metrics)
            except Exception as exc:  # the store's failures come as many types; all mean the same to the user
                raise TrackingError(f"MLflow store {store.uri}: {first_line(exc)}") from None


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
