"""The pyfunc MLflow builds a served model from ("models from code": no pickled objects). MLflow runs
this file from the model's own copy of the package; see pipeline/tracking/registry.py for the request format."""

import base64
import io
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from PIL import Image

from pipeline.imaging.images import load_image
from pipeline.tasks.sr.predict import classify, upscale
from pipeline.tasks.models import load_model
from pipeline.tracking.registry import encode


class ImageModel(mlflow.pyfunc.PythonModel):
    """An exported lstmvision model (model.pt + model.json) behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        self.net, self.spec = load_model(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for cell in model_input["image"]:
            image = load_image(io.BytesIO(base64.b64decode(cell)))  # the CLI's checks and modes
            if self.spec["task"] == "classification":
                name, probability = classify(self.net, self.spec, [image])[0]
                rows.append({"class": name, "probability": probability})
            else:
                sr = upscale(self.net, image, self.spec["data_args"]["scale"])
                pixels = sr.numpy()
                pixels = pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0))
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG")
                rows.append({"image": encode(png.getvalue()), "width": sr.shape[2], "height": sr.shape[1]})
        return pd.DataFrame(rows)


mlflow.models.set_model(ImageModel())
