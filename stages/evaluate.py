"""evaluate NAME: test metrics of every seed -> metrics/NAME.json (DVC metrics), eval/NAME/.

eval/NAME/ holds per_image.csv (every test image's result for every seed: what
the report's tie/difference tests read), speed.json and sample outputs.
Files only: the report stage attaches the test figures to the MLflow runs, in
one process for every variant (importing MLflow costs seconds per process).

``evaluate bicubic`` scores the untrained baseline on the same images.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import typer

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.tasks.classification.data import batch_loader, load_classification
from pipeline.tasks.sr.evaluate import (
    DETERMINISTIC,
    accuracy_metrics,
    bicubic,
    predict_classes,
    score_sr,
    sr_metrics,
    sr_test_sets,
)
from pipeline.imaging.images import save_image
from pipeline.tasks.sr.predict import default_device, y_model_upscaler
from pipeline.tasks.models import load_model, model_folder
from stages.common import EVAL, METRICS, MODELS, PREPARED, RAW, UsageError, command, names_hint, params


@command
def evaluate_cmd(name: str = typer.Argument(..., help=f"'bicubic' or a variant, {names_hint('variants')}")) -> None:
    """Score variant NAME (or 'bicubic') on the test data under the published protocol, every seed."""
    p = params()
    if name != "bicubic" and name not in p.variants:
        raise UsageError(f"unknown variant '{name}'")
    task = "sr" if name == "bicubic" else p.variants[name].task
    with atomic_dir(EVAL / name) as out:
        if task == "sr":
            sets = sr_test_sets(RAW, p.data.sr.test, p.data.sr.benchmarks)
            runs = [(DETERMINISTIC, s, bicubic) for s in p.data.sr.scales] if name == "bicubic" else [
                (str(seed), s, y_model_upscaler(load_model(model_folder(MODELS / name, seed, s))[0], default_device()))
                for seed in p.seeds for s in p.data.sr.scales]
            rows, speed = [], {}
            for seed, scale, upscale in runs:
                scored, sample, rate = score_sr(upscale, sets, scale, seed)
                rows += scored
                speed.setdefault(f"x{scale}", []).append(rate)
                if seed == runs[0][0]:
                    save_image(sample, out / f"x{scale}_{scored[0]['image']}.png")
            per_image = pd.DataFrame(rows)
            metrics = sr_metrics(per_image)
            speed = {k: float(np.mean(v)) for k, v in speed.items()}
        else:
            rows, rates = [], []
            test = None
            for seed in p.seeds:
                net, spec = load_model(model_folder(MODELS / name, seed, None))
                test = test or load_classification(PREPARED / "classification", spec["view"], p.seed)["test"]
                predicted, rate = predict_classes(net, batch_loader(test, 256), default_device())
                labels = test.tensors[1].numpy()
                rows.append(pd.DataFrame({"seed": str(seed), "image": np.arange(len(labels)), "label": labels,
                                          "predicted": predicted, "correct": predicted == labels}))
                rates.append(rate)
            per_image = pd.concat(rows, ignore_index=True)
            metrics, speed = accuracy_metrics(per_image), {"images_per_s": float(np.mean(rates))}
        per_image.to_csv(out / "per_image.csv", index=False)
        write_json(out / "speed.json", speed)
        write_json(out / "metrics.json", {"test": metrics})  # what the report reads
        # Last, inside the block: if it cannot be written, eval/NAME is not replaced either.
        write_json(METRICS / f"{name}.json", {"test": metrics})  # what `dvc metrics` reads
    print(f"{name}: {json.dumps(metrics)}")
