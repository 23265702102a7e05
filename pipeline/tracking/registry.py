"""Trained models as MLflow Models that serve: a pyfunc that prepares its own input (the same code as
`lstmvision classify` / `upscale`; pipeline/tracking/served_model.py, which MLflow runs from the logged copy of
this package, so training never imports it), with a signature and an input example, registered as a
new version of one registered model per variant (per variant and scale for SR). The report marks each
task's best version with the alias ``champion``.

Request and response: a DataFrame with one column ``image``, each cell an image file (PNG, JPEG, ...)
encoded in base64; a classifier answers ``class`` and ``probability`` per row, an SR model ``image``
(the upscaled 8-bit PNG, base64), ``width`` and ``height``.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

import pipeline
from pipeline.tracking.store import create_once

ALIAS = "champion"


def registered_name(variant: str, task: str, scale: int | None) -> str:
    return f"{variant}_x{scale}" if task == "sr" else variant


def encode(path_or_bytes: Path | bytes) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _signature(task: str):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    outputs = ([ColSpec("string", "class"), ColSpec("double", "probability")] if task == "classification" else
               [ColSpec("string", "image"), ColSpec("long", "width"), ColSpec("long", "height")])
    return ModelSignature(inputs=Schema([ColSpec("string", "image")]), outputs=Schema(outputs))


def _requirements() -> list[str]:
    """Pinned to this environment, so that resolving them never guesses (and never starts a subprocess)."""
    from importlib.metadata import version

    packages = ("torch", "numpy", "pandas", "pillow", "pydantic", "pyyaml", "scipy", "mlflow")
    return [f"{p}=={version(p).split('+')[0]}" for p in packages]


def log_model(store_uri: str, run_id: str, export: Path, example: Path, variant: str, task: str,
              scale: int | None) -> int:
    """Log the exported model in ``export`` as the run's MLflow Model (artifact ``model``) and register it
    as a new version of its registered model; returns the version number."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in stage logs
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = mlflow.MlflowClient(store_uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        mlflow.pyfunc.save_model(
            local, python_model=str(Path(__file__).with_name("served_model.py")), artifacts={"model": str(export)},
            code_paths=[str(Path(pipeline.__file__).parent)], signature=_signature(task),
            input_example=pd.DataFrame({"image": [encode(example)]}), pip_requirements=_requirements(),
        )
        shutil.rmtree(local / "code" / "pipeline" / "__pycache__", ignore_errors=True)
        client.log_artifacts(run_id, str(local), "model")
    name = registered_name(variant, task, scale)
    create_once(lambda: client.create_registered_model(
        name, description=f"lstmvision {task} variant {variant}" + (f" at x{scale}" if scale else "")))
    version = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    return int(version.version)


def champions(summary: dict, metrics_dir: Path, models_dir: Path, sr_test: str) -> list[tuple[list[str], str, str]]:
    """Each task's (and SR scale's) contest by the report's evidence: (every competing registered model,
    the winner's, the winning run). The winner is the report's leader (rank 1, best mean; for SR on the
    held-out set ``sr_test``); its version is the run of its best seed there."""
    import json

    contests = []
    tables = {"classification": summary.get("classification", []),
              "sr": [r for r in summary.get("sr", []) if r["set"] == sr_test and r["variant"] != "bicubic"]}
    for task, rows in tables.items():
        for scale in sorted({r.get("scale") for r in rows}, key=str):
            group = [r for r in rows if r.get("scale") == scale]
            leader = min(group, key=lambda r: (r["rank"], -r["mean"]))["variant"]
            test = json.loads((metrics_dir / f"{leader}.json").read_text())["test"]
            seeds = (test["accuracy"] if task == "classification" else test[sr_test][scale]["psnr"])["seeds"]
            best_seed = max(seeds, key=seeds.get)
            number = int(scale[1:]) if task == "sr" else None
            run = next(r for r in json.loads((models_dir / leader / "runs.json").read_text())
                       if str(r["seed"]) == best_seed and r["scale"] == number)
            contests.append(([registered_name(r["variant"], task, number) for r in group],
                             registered_name(leader, task, number), run["run_id"]))
    return contests


def crown(store_uri: str, contests: list[tuple[list[str], str, str]]) -> list[str]:
    """Alias ``champion`` on each winner's version made by the winning run, and off every other
    competitor's registered model, so that one name per task serves. Returns "name@version" per winner."""
    client = mlflow.MlflowClient(store_uri)
    crowned = []
    for competitors, winner, run_id in contests:
        versions = client.search_model_versions(f"name = '{winner}' and run_id = '{run_id}'")
        if not versions:  # trained before models were registered: nothing to serve
            continue
        for name in competitors:
            if name != winner:
                try:
                    client.delete_registered_model_alias(name, ALIAS)
                except mlflow.exceptions.MlflowException:  # never crowned, or no such model
                    pass
        client.set_registered_model_alias(winner, ALIAS, versions[0].version)
        crowned.append(f"{winner}@{versions[0].version}")
    return crowned
