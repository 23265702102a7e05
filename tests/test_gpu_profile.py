"""The GPU profile cannot fail on configuration: every variant of profiles/gpu.yaml, at its full size, is
built, trained for two optimiser steps on CPU, evaluated and exported through the stage commands.

Only the data is made small (embedded MNIST instead of 60k digits, a few SR patches, two small test images
served over HTTP) and so are the SR batches: a 256-cell LSRCNN step on a batch of 64 takes seconds on two
CPU cores. Models, views (784 steps), scales, precision and loader settings are the profile's own.
"""

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import skimage.data
import yaml
from PIL import Image

from pipeline.tasks.models import count_parameters, load_model, model_folder

pytestmark = pytest.mark.slow

# One process for every stage command (each is the function `lstmvision <stage>` runs): the imports of
# torch, Lightning and MLflow are paid once instead of 30 times.
DRIVER = """
import sys
import stages.download, stages.evaluate, stages.patches, stages.split, stages.train

stages.download.main(); stages.split.main(); stages.patches.main()
for task in ("classification", "sr"):
    stages.train.main(task)
for name in sys.argv[1:]:
    stages.evaluate.main(name)
"""


def _two_small_images() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, image in (("cat.png", skimage.data.chelsea()[100:172, 150:246]),
                            ("camera.png", skimage.data.camera()[200:272, 200:296])):
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            info = tarfile.TarInfo(name)
            info.size = len(png.getvalue())
            tar.addfile(info, io.BytesIO(png.getvalue()))
    return buf.getvalue()


def test_every_gpu_profile_variant_builds_trains_evaluates_and_exports_at_full_size(make_project, file_server, dvc,
                                                                                      set_params):
    project = make_project(profile="gpu")
    gpu = yaml.safe_load((project / "params.yaml").read_text())
    file_server.files["/few.tgz"] = blob = _two_small_images()
    variants = gpu["run"]["classification"] + gpu["run"]["sr"]
    few_steps = {f"variants.{name}.optim.{key}": value for name in variants for key, value in (
        ("epochs", 1), ("max_steps_per_epoch", 2), ("batch_size", 8 if name in gpu["run"]["sr"] else 64))}
    few_images = {"url": f"{file_server.url}/few.tgz", "sha256": hashlib.sha256(blob).hexdigest()}
    set_params(project, **{
        "seeds": [1], "data.sources": {"few_images": few_images},
        "data.classification.source": "mnist_embedded", "data.classification.limit": 256,
        "data.classification.val_fraction": 0.02, "data.classification.test_fraction": 0.02,
        "data.sr.train": ["skimage_train"], "data.sr.test": "few_images", "data.sr.benchmarks": [],
        "data.sr.max_patches": 64, **few_steps})

    planned = dvc(project, "stage", "list", "--name-only")  # the stages dvc.yaml makes of the profile's lists
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert {"train_classification", "train_sr"} | {f"evaluate_{task}@{name}" for task in ("classification", "sr")
                                                   for name in gpu["run"][task]} <= set(planned.stdout.split())

    proc = subprocess.run([sys.executable, "-c", DRIVER, *variants], cwd=project, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    for name in variants:
        variant, sr = gpu["variants"][name], name in gpu["run"]["sr"]
        models = project / "models" / ("sr" if sr else "classification") / name
        runs = json.loads((models / "runs.json").read_text())
        assert [r["scale"] for r in runs] == (gpu["data"]["sr"]["scales"] if sr else [None])  # every scale: 2, 3, 4
        for entry in runs:
            folder = model_folder(models, 1, entry["scale"])
            spec = json.loads((folder / "model.json").read_text())
            assert {k: spec["model"][k] for k in variant.get("model", {})} == variant.get("model", {})  # full size
            net, _ = load_model(folder)  # the export loads, at the size it was trained
            assert count_parameters(net) == entry["params_count"]
            run = client.get_run(entry["run_id"])
            assert run.info.status == "FINISHED"
            # the profile's 16-mixed is what a GPU runs; this CPU ran 32-true, and the run says so
            assert run.data.params["precision"] == "32-true" and run.data.params["accelerator"] == "cpu"
        figures = json.loads((project / "metrics" / f"{name}.json").read_text())["test"]
        if sr:
            assert set(figures["few_images"]) == {"x2", "x3", "x4"}
            assert all(np.isfinite(v["psnr"]["mean"]) for v in figures["few_images"].values())
        else:
            assert 0 <= figures["accuracy"]["mean"] <= 1
    views = {name: json.loads((project / "models/classification" / name / "s1/model.json").read_text())["view"]
             for name in ("lstm_pixel", "lstm_permuted")}
    assert views == {"lstm_pixel": "pixels", "lstm_permuted": "permuted"}  # 784 steps of one pixel
