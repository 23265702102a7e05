"""upscale IMAGE... --out DIR: a user's own photos super-resolved by an exported SR model (Y by the
network, colour by bicubic), in tiles so that memory stays bounded, written as 8-bit PNG."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.core.atomic import write_json
from pipeline.imaging.images import load_image, save_image
from pipeline.tasks.models import default_device, load_model
from pipeline.tasks.sr.predict import upscale
from stages.common import UsageError, command
from stages.tools.args import check_json_out
from stages.tools.model_ref import MODEL_HELP, find_model


@command
def upscale_cmd(
    images: list[Path] = typer.Argument(..., help="image files (PNG, JPEG, ...)"),
    out: Path = typer.Option(..., help="folder for the upscaled PNGs (<name>_x<scale>.png)"),
    model: str = typer.Option("lsrcnn", help=MODEL_HELP),
    scale: int | None = typer.Option(None, help="which scale of a variant trained at several (default: the lowest)"),
    seed: int | None = typer.Option(None, help="which seed's model of a trained variant (default: the lowest)"),
    tile: int = typer.Option(256, help="tile side in input pixels (bounds memory)"),
    json_out: Path | None = typer.Option(None, "--json",
                                         help="also write {model, scale, images: [{file, out, width, height}]}"),
) -> None:
    """Upscale images by a trained SR model's factor."""
    check_json_out(json_out)
    if tile < 16:
        raise UsageError(f"--tile must be at least 16, got {tile}")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise UsageError(f"not a file: {', '.join(missing)}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    net, spec = load_model(find_model(model, "sr", scale, seed))
    factor = spec["data_args"]["scale"]
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in images:
        sr = upscale(net, load_image(path), factor, tile=tile, device=default_device())
        target = out / f"{path.stem}_x{factor}.png"
        save_image(sr, target)
        results.append({"file": str(path), "out": str(target), "width": sr.shape[2], "height": sr.shape[1]})
        typer.echo(f"{path} -> {target} ({sr.shape[2]}x{sr.shape[1]})")
    if json_out:
        write_json(json_out, {"model": model, "scale": factor, "images": results})
