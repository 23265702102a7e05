"""Trained models as MLflow Models that serve: a pyfunc that prepares its own input (the same code as
`lstmvision classify` / `upscale`; pipeline/tracking/served_model.py, which MLflow runs from the logged
copy of this package, so training never imports it), with the task's signature and an input example,
logged as a LoggedModel of its run and registered as a new version of one registered model per variant
(per variant and scale for SR) whose source is that LoggedModel. The
report marks each task's best version with the alias ``champion`` (pipeline.report.champions).

Packaging is not training: the train stage packages a finished training after it, and again (without
training) when this code changed, which ``packaging_digest`` tells.

Request and response: a DataFrame with one column ``image``, each cell an image file (PNG, JPEG, ...)
encoded in base64; a classifier answers ``class`` and ``probability`` per row, an SR model ``image``
(the upscaled 8-bit PNG, base64), ``width`` and ``height``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

import pipeline
from pipeline import tasks
from pipeline.core.codedeps import closure, digest
from pipeline.tracking.store import Store, create_once, one_line_errors


def registered_name(variant: str, scale: int | None) -> str:
    return f"{variant}_x{scale}" if scale else variant


def encode(path_or_bytes: Path | bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _signature(task: str):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = [ColSpec(kind, name) for kind, name in tasks.serving(task).OUTPUTS]
    return ModelSignature(inputs=Schema([ColSpec("string", "image")]), outputs=Schema(outputs))


def _requirements() -> list[str]:
    """Pinned to this environment, so that resolving them never guesses (and never starts a subprocess)."""
    from importlib.metadata import version

    packages = ("torch", "numpy", "pandas", "pillow", "pydantic", "pyyaml", "scipy", "mlflow")
    return [f"{p}=={version(p).split('+')[0]}" for p in packages]


def log_model(store_uri: str, run_id: str, export: Path, example: Path, variant: str, task: str,
              scale: int | None) -> int:
    """Log the exported model in ``export`` as an MLflow 3 LoggedModel of the run (its Models tab and the runs
    table's Models column show it; its files live with the model, ``models:/<model id>``) and register it
    as a new version of its registered model, pointing at it; returns the version number."""
    from mlflow.entities import LoggedModelOutput

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in stage logs
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = mlflow.MlflowClient(store_uri)
    name = registered_name(variant, scale)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        mlflow.pyfunc.save_model(
            local, python_model=str(Path(__file__).with_name("served_model.py")), artifacts={"model": str(export)},
            code_paths=[str(Path(pipeline.__file__).parent)], signature=_signature(task),
            input_example=pd.DataFrame({"image": [encode(example)]}), pip_requirements=_requirements(),
        )
        for cache in list((local / "code").rglob("__pycache__")):
            shutil.rmtree(cache, ignore_errors=True)
        experiment = client.get_run(run_id).info.experiment_id
        model = client.create_logged_model(experiment, name=name, source_run_id=run_id, model_type=task,
                                           tags={"variant": variant, "task": task})
        try:
            client.log_model_artifacts(model.model_id, str(local))
        except BaseException:
            client.finalize_logged_model(model.model_id, "FAILED")
            raise
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
    create_once(lambda: client.create_registered_model(
        name, description=f"lstmvision {task} variant {variant}" + (f" at x{scale}" if scale else "")))
    # The registry resolves a models:/<id> source through the process's global tracking URI, not the client's:
    # set it for this call only (MLflow's own helper restores the unset state too).
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(store_uri):
        version = client.create_model_version(name, f"models:/{model.model_id}", run_id=run_id,
                                              model_id=model.model_id)
    return int(version.version)


@functools.cache
def packaging_digest(task: str) -> str:
    """The code a packaged model was made by: this module, the served model and the task's serving code, read
    once per process (the code it runs; see pipeline.training.identity.code_digest)."""
    return digest(closure(__name__, "pipeline.tracking.served_model", *tasks.loaded_by_name(task, "serve")))


def package(store: Store, run_id: str, export: Path, example: Path, record: Path, variant: str, task: str,
            scale: int | None) -> int | None:
    """Log and register a finished training's export, unless ``record`` says this run (its id is unique
    across stores) was packaged by the current packaging code. Returns the new version, None when there was
    nothing to do."""
    current = {"run_id": run_id, "code": packaging_digest(task)}
    if record.exists() and json.loads(record.read_text()).items() >= current.items():
        return None
    with one_line_errors(store):
        version = log_model(store.uri, run_id, export, example, variant, task, scale)
    record.write_text(json.dumps({**current, "version": version}))
    return version
