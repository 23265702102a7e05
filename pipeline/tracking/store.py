"""MLflow: which store, failing fast when it is away, and the run a variant writes to.

The store is MLFLOW_TRACKING_URI when set, else ``tracking.uri`` from params
(default ``sqlite:///mlflow.db``, made absolute against the project root so
that every stage and ``mlflow ui`` see the same file). Local stores get an
explicit artifact folder (``tracking.artifacts``); Lightning would otherwise
fall back to the deprecated ./mlruns file store.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.schema import Tracking
from pipeline.core.errors import TrackingError, first_line

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
LOCAL_URI = "sqlite:///mlflow.db"
REQUEST_TIMEOUT_S = 60  # per request to a tracking server (MLFLOW_HTTP_REQUEST_TIMEOUT overrides)
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
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry notices; a failure is one line of ours
        # A stopped server refuses at once, so one retry keeps that failure fast; a busy one (trainings
        # uploading models while basic auth hashes passwords) may take seconds per request and is waited for.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT_S))
        return Store(uri, None)
    if cfg.on_unreachable == "local":
        log.warning("MLflow server %s unreachable (%s); logging to the local store %s", uri, problem, fallback)
        return _local(cfg.model_copy(update={"uri": fallback}), root)
    where = "unset MLFLOW_TRACKING_URI" if env else "change tracking.uri"
    raise TrackingError(f"MLflow server {uri} unreachable ({problem}); start it, {where}, "
                        "or set tracking.on_unreachable: local")


# Experiments open on their runs table in the MLflow UI (3.x shows GenAI tabs to untyped ones).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


@contextlib.contextmanager
def one_line_errors(store: Store):
    """The store's failures come as many types (locked database, HTTP errors, auth); all mean the same."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(f"MLflow store {store.uri}: {explain(exc, store.uri)}") from None


def explain(exc: Exception, uri: str) -> str:
    """A refused MLflow call as one line that says what to do about it."""
    code = getattr(exc, "error_code", "")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if code == "UNAUTHENTICATED":
        who = f"user '{user}'" if user else "no user (MLFLOW_TRACKING_USERNAME is unset)"
        return (f"the server refused the credentials of {who} (HTTP 401); set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD")
    if "failed with exception" in str(exc):  # MLflow's wording for a transport failure: no answer at all
        reason = "connection refused" if "Connection refused" in str(exc) else "no answer"
        return f"the server stopped answering ({reason}); restart it, then `dvc repro` resumes the training"
    if code == "PERMISSION_DENIED":
        endpoint = str(exc).split("endpoint ")[-1].split(" ")[0] if "endpoint " in str(exc) else "this call"
        return (f"user '{user}' has no permission for {endpoint} (HTTP 403); an admin grants it: "
                f"MLFLOW_TRACKING_URI={uri} lstmvision team grant {user} EDIT")
    return first_line(exc)


@dataclass(frozen=True)
class Run:
    """One training's MLflow run: params once, curves per epoch (step = epoch), cost and artifacts at the end."""

    store: Store
    run_id: str

    def _client(self):
        import mlflow
        return mlflow.MlflowClient(self.store.uri)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with one_line_errors(self.store):
            self._client().log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifacts(self, *paths: Path) -> None:
        with one_line_errors(self.store):
            for path in paths:
                self._client().log_artifact(self.run_id, str(path))

    def log_dataset(self, name: str, digest: str, source: str) -> None:
        """The training data as an MLflow dataset input (its digest is DVC's hash of the folder)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        data = DatasetInput(Dataset(name, digest, "local", source), [InputTag("mlflow.data.context", "training")])
        with one_line_errors(self.store):
            try:
                self._client().log_inputs(self.run_id, datasets=[data])
            except MlflowException as exc:
                # Trainings of one experiment logging the same dataset at once (fanout jobs, queued experiments)
                # each insert it when it is new; on a server's database all but one then hit its unique key.
                # The dataset is there now: a second call only links it to this run.
                if "unique" not in str(exc).lower():
                    raise
                self._client().log_inputs(self.run_id, datasets=[data])

    def end(self, status: str) -> None:
        with one_line_errors(self.store):
            self._client().set_terminated(self.run_id, status)


def create_once(create: Callable[[], object]) -> None:
    """An MLflow create call (experiment, registered model) that a training running in parallel may
    have made first: RESOURCE_ALREADY_EXISTS means it exists, which is what was wanted."""
    from mlflow.exceptions import MlflowException

    try:
        create()
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def open_run(store: Store, run_file: Path, experiment: str, run_name: str, tags: dict, params: dict) -> Run:
    """The MLflow run a training writes to, with its params logged.

    ``run_file`` remembers the run id together with the store it lives in, so a
    resumed training continues its run; when the store changed, or the run was
    deleted, a new run starts and the log says so. Any failure of the store
    (locked or read-only database, server error) is one line.
    """
    import json

    import mlflow
    from mlflow.entities import Param

    recorded = json.loads(run_file.read_text()) if run_file.exists() else {}
    run_id = recorded.get("run_id") if recorded.get("uri") == store.uri else None
    if recorded and run_id is None:
        log.warning("%s: its MLflow run lives in another store (%s); starting a new run in %s",
                    run_name, recorded.get("uri"), store.uri)
    with one_line_errors(store):
        client = mlflow.MlflowClient(store.uri)
        if run_id is not None and not run_exists(store, run_id):
            log.warning("%s: MLflow run %s is gone from %s; starting a new run", run_name, run_id, store.uri)
            run_id = None
        experiment_id = _experiment(client, store, experiment)
        if run_id is None:
            tags = {"mlflow.user": _user(), **tags}
            run_id = client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    run_file.write_text(json.dumps({"uri": store.uri, "run_id": run_id}))
    return Run(store, run_id)


def _experiment(client, store: Store, name: str) -> str:
    """The id of experiment ``name``, made (for its runs table) when missing."""
    found = client.get_experiment_by_name(name)
    if found is None:
        create_once(lambda: client.create_experiment(name, tags=EXPERIMENT_KIND, artifact_location=(
            store.artifact_root and f"{store.artifact_root}/{name}")))
        found = client.get_experiment_by_name(name)
    if EXPERIMENT_KIND.items() - found.tags.items():  # made by an older version
        client.set_experiment_tag(found.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
    return found.experiment_id


def prepare(store: Store, experiments: list[str]) -> None:
    """Create the store's tables and these experiments now, before trainings start in parallel: processes
    that open a new SQLite store at once race in its schema migration and fail. After it, each training's
    writes are short transactions that SQLite serialises (its busy timeout waits out the others)."""
    import mlflow

    with one_line_errors(store):
        client = mlflow.MlflowClient(store.uri)
        for name in experiments:
            _experiment(client, store, name)


def _user() -> str:
    """Who trained, for the runs table's User column: the tracking server's login, else the OS user."""
    try:
        return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return "unknown"


def run_exists(store: Store, run_id: str) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient(store.uri).get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise  # refused credentials or an unwell server are not a missing run


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
