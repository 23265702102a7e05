"""benchmark-sr: score an SR model (or bicubic) on a folder of HR images under the published protocol."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.core.atomic import write_json
from pipeline.imaging.files import list_images
from pipeline.imaging.images import iter_folder
from pipeline.tasks.models import default_device
from pipeline.tasks.sr.evaluate import bicubic, evaluate_images, summarize
from pipeline.tasks.sr.predict import y_model_upscaler
from stages.common import UsageError, command, human_echo
from stages.tools.args import check_json_out, check_range, check_scale
from stages.tools.model_ref import MODEL_HELP, load


@command
def benchmark_sr(
    model: str = typer.Option(..., help=f"'bicubic', or {MODEL_HELP}"),
    hr_dir: Path = typer.Option(..., help="folder of high-resolution images"),
    scale: int = typer.Option(..., help="2, 3 or 4"),
    seed: int | None = typer.Option(None, help="which seed's model of a trained variant (default: the lowest)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the results here ('-': stdout)"),
) -> None:
    """PSNR/SSIM (Y, border crop = scale, MATLAB bicubic degradation) of a model on a folder of HR images."""
    check_scale(scale)
    check_range("--seed", seed, 0)
    if not hr_dir.is_dir():
        raise UsageError(f"--hr-dir {hr_dir}: not a folder")
    check_json_out(json_out)
    if model == "bicubic":
        upscale = bicubic
    else:
        upscale = y_model_upscaler(load(model, "sr", scale, seed)[0], default_device())
    say = human_echo(json_out)
    width = max([4] + [len(path.stem) for path in list_images(hr_dir)])
    scores = []
    for name, image in iter_folder(hr_dir, min_size=scale * 2 + 11):  # one image in memory at a time
        if not scores:
            say(f"{'image':<{width}}  {'PSNR':>8}  {'SSIM':>7}")
        [score], _ = evaluate_images(upscale, [(name, image)], scale)
        scores.append(score)
        say(f"{score.name:<{width}}  {score.psnr:8.3f}  {score.ssim:7.4f}")  # each row as scored: progress
    if not scores:
        raise UsageError(f"--hr-dir {hr_dir}: no usable images")
    mean = summarize(scores)
    say(f"{'mean':<{width}}  {mean['psnr']:8.3f}  {mean['ssim']:7.4f}")
    if json_out:
        write_json(json_out, {"model": model, "scale": scale, "images": mean["images"], "psnr": mean["psnr"],
                              "ssim": mean["ssim"],
                              "per_image": [{"name": s.name, "psnr": s.psnr, "ssim": s.ssim} for s in scores]})
