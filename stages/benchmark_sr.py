"""benchmark-sr: score an SR model (or bicubic) on a folder of HR images under the published protocol."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from pipeline.atomic import write_json
from pipeline.config import NAME
from pipeline.evaluation import bicubic, default_device, evaluate_images, summarize, y_model_upscaler
from pipeline.images import iter_folder
from pipeline.models import load_model, read_spec
from stages.common import MODELS, UsageError, command


def _model_dir(model: str, scale: int, seed: int | None) -> Path:
    """A variant name (models/NAME/s<seed>/x<scale>, the lowest seed unless given) or a folder holding
    model.pt + model.json."""
    variant = NAME.match(model) is not None  # a variant name, not a path
    trained = sorted(MODELS.glob(f"{model}/s[0-9]*/x{scale}"), key=lambda f: int(f.parent.name[1:])) if variant else []
    if seed is not None:
        trained = [f for f in trained if f.parent.name == f"s{seed}"]
    for candidate in (Path(model), Path(model).parent, *trained[:1]):
        if (candidate / "model.json").is_file():
            spec = read_spec(candidate)
            if spec["task"] != "sr":
                raise UsageError(f"{candidate} is a {spec['task']} model, not a super-resolution one")
            if spec["data_args"].get("scale") != scale:
                raise UsageError(f"{candidate} is a x{spec['data_args'].get('scale')} model, not x{scale}")
            return candidate
    raise UsageError(f"--model {model}: not 'bicubic', a trained variant at x{scale}, or a model folder")


@command
def benchmark_sr(
    model: str = typer.Option(..., help="'bicubic', a trained SR variant name, or a model folder/model.pt path"),
    hr_dir: Path = typer.Option(..., help="folder of high-resolution images"),
    scale: int = typer.Option(..., help="2, 3 or 4"),
    seed: int | None = typer.Option(None, help="which seed's model of a trained variant (default: the lowest)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the results here"),
) -> None:
    """PSNR/SSIM (Y, border crop = scale, MATLAB bicubic degradation) of a model on a folder of HR images."""
    if scale not in (2, 3, 4):
        raise UsageError(f"--scale must be 2, 3 or 4, got {scale}")
    if not hr_dir.is_dir():
        raise UsageError(f"--hr-dir {hr_dir}: not a folder")
    if json_out is not None:  # checked before minutes of computation, not after
        if json_out.is_dir():
            raise UsageError(f"--json {json_out}: is a folder")
        if not json_out.parent.is_dir() or not os.access(json_out.parent, os.W_OK):
            raise UsageError(f"--json {json_out}: cannot write into {json_out.parent}")
    if model == "bicubic":
        upscale = bicubic
    else:
        upscale = y_model_upscaler(load_model(_model_dir(model, scale, seed))[0], default_device())
    scores, _ = evaluate_images(upscale, iter_folder(hr_dir, min_size=scale * 2 + 11), scale)  # streamed
    if not scores:
        raise UsageError(f"--hr-dir {hr_dir}: no usable images")
    mean = summarize(scores)
    width = max([4] + [len(s.name) for s in scores])
    typer.echo(f"{'image':<{width}}  {'PSNR':>8}  {'SSIM':>7}")
    for s in scores:
        typer.echo(f"{s.name:<{width}}  {s.psnr:8.3f}  {s.ssim:7.4f}")
    typer.echo(f"{'mean':<{width}}  {mean['psnr']:8.3f}  {mean['ssim']:7.4f}")
    if json_out:
        write_json(json_out, {"model": model, "scale": scale, "images": mean["images"], "psnr": mean["psnr"],
                              "ssim": mean["ssim"],
                              "per_image": [{"name": s.name, "psnr": s.psnr, "ssim": s.ssim} for s in scores]})
