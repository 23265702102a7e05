"""The pyfunc MLflow builds a served model from ("models from code": no pickled objects). MLflow runs
this file from the model's own copy of the package; see pipeline/tracking/registry.py for the request
format. Each answer is the model's task's (pipeline.tasks.<task>.serve)."""

import base64
import io
from pathlib import Path

import mlflow
import pandas as pd

from pipeline import tasks
from pipeline.tasks.models import load_model


class ImageModel(mlflow.pyfunc.PythonModel):
    """An exported lstmvision model (model.pt + model.json) behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        self.net, self.spec = load_model(Path(context.artifacts["model"]))
        self.task = tasks.serving(self.spec["task"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        # Each cell read by the task's reader, the one its CLI reads files with (same checks and modes);
        # a refused image fails the request (HTTP 400) with its one line, naming it by its row (from 1).
        return pd.DataFrame([self.task.answer(self.net, self.spec,
                                              self.task.read(io.BytesIO(base64.b64decode(cell)), f"image {row}"))
                             for row, cell in enumerate(model_input["image"], 1)])


mlflow.models.set_model(ImageModel())
