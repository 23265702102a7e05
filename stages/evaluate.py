"""evaluate NAME: test metrics -> metrics/NAME.json (DVC metrics), eval/NAME/ (samples, speed).

Files only: the report stage attaches the test figures to the MLflow runs, in
one process for every variant (importing MLflow costs seconds per process).

``evaluate bicubic`` scores the untrained baseline on the same images.
"""

from __future__ import annotations

import json
import time

from torch.utils.data import DataLoader

from pipeline.atomic import atomic_dir, write_json
from pipeline.config import Params, task_of
from pipeline.datasets import load_classification
from pipeline.evaluation import (
    Upscaler,
    bicubic,
    classify,
    default_device,
    evaluate_images,
    summarize,
    y_model_upscaler,
)
from pipeline.images import load_folder, save_image
from pipeline.models import load_model
from stages.common import EVAL, METRICS, MODELS, PREPARED, RAW, UsageError, command, params


def sr_test_sets(p: Params) -> dict[str, list]:
    """The held-out embedded images, plus every benchmark the download stage could get."""
    manifest = json.loads((RAW / "manifest.json").read_text())
    names = [p.data.sr.test] + [b for b in p.data.sr.benchmarks if manifest.get(b, {}).get("available")]
    return {name: load_folder(RAW / name) for name in dict.fromkeys(names)}


def evaluate_sr(p: Params, upscalers: dict[int, Upscaler], out) -> tuple[dict, dict]:
    """Per set and scale PSNR/SSIM; writes the first held-out image's output as a sample."""
    metrics, speed = {}, {}
    for set_name, images in sr_test_sets(p).items():
        for scale, upscale in upscalers.items():
            started = time.perf_counter()
            scores, outputs = evaluate_images(upscale, images, scale)
            if set_name == p.data.sr.test:
                speed[f"x{scale}"] = len(images) / (time.perf_counter() - started)
                save_image(outputs[0], out / f"x{scale}_{scores[0].name}.png")
            s = summarize(scores)
            metrics.setdefault(set_name, {})[f"x{scale}"] = {"psnr": round(s["psnr"], 4), "ssim": round(s["ssim"], 5)}
    return metrics, speed


@command
def evaluate_cmd(name: str) -> None:
    """Score variant NAME (or 'bicubic') on the test data under the published protocol."""
    p = params()
    if name != "bicubic" and name not in p.variants:
        raise UsageError(f"unknown variant '{name}'")
    with atomic_dir(EVAL / name) as out:
        if name == "bicubic":
            metrics, speed = evaluate_sr(p, {s: bicubic for s in p.data.sr.scales}, out)
        elif task_of(p.variants[name]) == "sr":
            upscalers = {s: y_model_upscaler(load_model(MODELS / name / f"x{s}")[0], default_device())
                         for s in p.data.sr.scales}
            metrics, speed = evaluate_sr(p, upscalers, out)
        else:
            net, spec = load_model(MODELS / name)
            test = load_classification(PREPARED / "classification", spec["view"], p.seed)["test"]
            acc, rate = classify(net, DataLoader(test, batch_size=256), default_device())
            metrics, speed = {"accuracy": round(acc, 5)}, {"images_per_s": rate}
        write_json(out / "speed.json", speed)
        write_json(out / "metrics.json", {"test": metrics})  # what the report reads
    write_json(METRICS / f"{name}.json", {"test": metrics})  # what `dvc metrics` reads
    print(f"{name}: {json.dumps(metrics)}")
