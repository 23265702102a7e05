"""--model for the commands that use an exported model: a trained variant's name, a model folder (or
its model.pt), an MLflow run (``runs:/<run id>``) whose artifacts hold model.pt and model.json, or a
registered model (``models:/<name>@<alias>`` or ``models:/<name>/<version>``), read from its run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from pipeline.config.schema import NAME
from pipeline.tasks.models import load_model, read_spec
from stages.common import MODELS, ROOT, UsageError, params

MODEL_HELP = ("a trained variant's name, a model folder (or its model.pt), runs:/<MLflow run id>, "
              "or models:/<registered name>@<alias> (or /<version>)")


@contextmanager
def _from_store(ref: str) -> Iterator[Path]:
    """The model.pt and model.json of the run ``ref`` names (``runs:/`` or ``models:/``), downloaded from
    the tracking store into a temporary folder that is deleted when the block ends, however it ends."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeline.tracking.store import resolve_store

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stderr keeps to the one-line errors
    uri = os.environ.get("MLFLOW_TRACKING_URI") or resolve_store(params().tracking, ROOT).uri
    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory(prefix="lstmvision-model-") as dest:
        try:
            if ref.startswith("models:/"):
                name, _, version = ref.removeprefix("models:/").partition("/")
                name, _, alias = name.partition("@")
                found = (client.get_model_version_by_alias(name, alias) if alias else
                         client.get_model_version(name, version))
                run_id = found.run_id
            else:
                run_id = ref.removeprefix("runs:/").strip("/").split("/")[0]
            for file in ("model.json", "model.pt"):
                client.download_artifacts(run_id, file, dest)
        except (MlflowException, OSError) as exc:
            raise UsageError(f"--model {ref}: no model.pt/model.json found in {uri} "
                             f"({str(exc).splitlines()[0][:160]})") from None
        yield Path(dest)


def _trained(variant: str, scale: int | None, seed: int | None) -> list[Path]:
    """models/<task>/<variant>/s<seed>[/x<scale>] folders of any task (the caller checks which), lowest seed
    (then scale) first."""
    seeds = MODELS.glob(f"*/{variant}/s{seed if seed is not None else '[0-9]*'}")
    folders = [f for s in seeds for f in ([s] if (s / "model.json").is_file() else s.glob(f"x{scale or '[0-9]*'}"))]
    return sorted(folders, key=lambda f: [int(part[1:]) for part in f.relative_to(MODELS).parts[2:]])


def load(ref: str, task: str, scale: int | None = None, seed: int | None = None) -> tuple[nn.Module, dict]:
    """The model ``ref`` names, loaded (:func:`pipeline.tasks.models.load_model`); a copy read from the
    tracking store is loaded inside its temporary folder, which is gone when this returns or raises."""
    if ref.startswith(("runs:/", "models:/")):
        with _from_store(ref) as folder:
            return load_model(_checked(folder, task, scale, ref))  # named by ref: the folder is temporary
    return load_model(find_model(ref, task, scale, seed))


def _checked(folder: Path, task: str, scale: int | None, name: str | Path) -> Path:
    """``folder``, once its model.json says it is a ``task`` model (at ``scale`` for SR)."""
    spec = read_spec(folder)
    if spec["task"] != task:
        raise UsageError(f"{name} is a {spec['task']} model, not a {task} one")
    if scale and spec["data_args"].get("scale") != scale:
        raise UsageError(f"{name} is a x{spec['data_args'].get('scale')} model, not x{scale}")
    return folder


def find_model(ref: str, task: str, scale: int | None = None, seed: int | None = None) -> Path:
    """The folder of the model ``ref`` names (a variant, a folder or its model.pt; not the store: see
    :func:`load`), checked to be a ``task`` model (at ``scale`` for SR). A variant name picks its lowest
    trained seed unless ``seed`` is given."""
    trained = _trained(ref, scale, seed) if NAME.match(ref) else []
    for candidate in [Path(ref), Path(ref).parent, *trained[:1]]:
        if (candidate / "model.json").is_file():
            return _checked(candidate, task, scale, candidate)
    at = f" at x{scale}" if scale else ""
    raise UsageError(f"--model {ref}: not a trained {task} variant{at}, a model folder, runs:/ or models:/")
