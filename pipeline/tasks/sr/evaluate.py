"""SR test-set evaluation under the published protocol, of a trained variant or of bicubic.

SR protocol (see :mod:`pipeline.tasks.sr.metrics`): HR modcropped to the scale; LR made
with MATLAB bicubic (8-bit rounded); the model super-resolves the Y channel
while Cb/Cr are upscaled bicubically; the RGB result is rounded to 8 bits
and compared with the HR on Y, ``scale`` pixels cropped from each border.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config.architectures import BASELINES
from pipeline.imaging.images import iter_folder, modcrop
from pipeline.imaging.resize import imresize
from pipeline.tasks.base import Evaluated, Inputs
from pipeline.tasks.models import default_device, load_model, model_folder
from pipeline.tasks.sr.metrics import psnr_y, quantize, ssim_y
from pipeline.tasks.sr.predict import Upscaler, y_model_upscaler
from pipeline.tasks.summary import summary

DETERMINISTIC = "deterministic"  # the seed label of a model without one (bicubic)


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    return imresize(lr, scale, quantize=True)


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float


def evaluate_images(upscale: Upscaler, images: Iterable[tuple[str, torch.Tensor]], scale: int
                    ) -> tuple[list[ImageScore], torch.Tensor | None]:
    """Per-image PSNR/SSIM of ``upscale`` on HR images, streamed: only the first 8-bit SR output is kept
    (a sample to show), so memory does not grow with the number of images."""
    scores, first = [], None
    for name, image in images:
        hr = modcrop(image, scale)
        lr = imresize(hr, 1 / scale, quantize=True)
        sr = quantize(upscale(lr, scale))
        scores.append(ImageScore(name, psnr_y(sr, hr, scale), ssim_y(sr, hr, scale)))
        first = sr if first is None else first
    return scores, first


def summarize(scores: list[ImageScore]) -> dict:
    n = len(scores)
    return {"psnr": sum(s.psnr for s in scores) / n, "ssim": sum(s.ssim for s in scores) / n, "images": n}


def sr_test_sets(raw: Path, test: str, benchmarks: list[str]) -> dict[str, Path]:
    """The held-out images' folder, plus every benchmark the download stage could get (its manifest says which)."""
    manifest = json.loads((Path(raw) / "manifest.json").read_text())
    names = [test] + [b for b in benchmarks if manifest.get(b, {}).get("available")]
    return {name: Path(raw) / name for name in dict.fromkeys(names)}


def score_sr(upscale: Upscaler, sets: dict[str, Path], scale: int, seed: str
             ) -> tuple[list[dict], torch.Tensor, float]:
    """Per-image rows (set, scale, seed, image, psnr, ssim) over every set, images read one at a time; also
    the first set's first output (a sample to show) and that set's images per second."""
    rows, sample, rate = [], None, 0.0
    for set_name, folder in sets.items():
        started = time.perf_counter()
        scores, first = evaluate_images(upscale, iter_folder(folder), scale)
        if sample is None:
            sample, rate = first, len(scores) / (time.perf_counter() - started)
        rows += [{"set": set_name, "scale": scale, "seed": seed, "image": s.name, "psnr": s.psnr, "ssim": s.ssim}
                 for s in scores]
    return rows, sample, rate


def sr_metrics(per_image: pd.DataFrame) -> dict:
    """{set: {x<scale>: {psnr|ssim: mean/std/n over seeds of the set's mean}}}."""
    out: dict = {}
    for (set_name, scale), part in per_image.groupby(["set", "scale"], sort=False):
        per_seed = part.groupby("seed", sort=False)[["psnr", "ssim"]].mean()
        out.setdefault(set_name, {})[f"x{scale}"] = {"psnr": summary(per_seed.psnr.to_dict(), 4),
                                                     "ssim": summary(per_seed.ssim.to_dict(), 5)}
    return out


def evaluate(name: str, params, inputs: Inputs) -> Evaluated:
    """Every seed's model (or bicubic) at every scale on the held-out set and the available benchmarks."""
    cfg = params.data.sr
    sets = sr_test_sets(inputs.raw, cfg.test, cfg.benchmarks)
    if name in BASELINES:  # bicubic, the one SR baseline
        runs = [(DETERMINISTIC, s, bicubic) for s in cfg.scales]
    else:
        runs = [(str(seed), s, y_model_upscaler(load_model(model_folder(inputs.models / name, seed, s))[0],
                                                default_device())) for seed in params.seeds for s in cfg.scales]
    rows, speed, samples = [], {}, {}
    for seed, scale, upscale in runs:
        scored, sample, rate = score_sr(upscale, sets, scale, seed)
        rows += scored
        speed.setdefault(f"x{scale}", []).append(rate)
        if seed == runs[0][0]:
            samples[f"x{scale}_{scored[0]['image']}.png"] = sample
    per_image = pd.DataFrame(rows)
    return Evaluated(per_image, sr_metrics(per_image), {k: float(np.mean(v)) for k, v in speed.items()}, samples)
