"""upscale IMAGE... --out DIR: a user's own photos super-resolved by an exported SR model (Y by the
network, colour by bicubic), in tiles so that memory stays bounded, written as 8-bit PNG."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from pipeline.core.atomic import unwritable, write_json
from pipeline.imaging.images import save_image
from pipeline.tasks.models import default_device
from pipeline.tasks.sr.predict import read_photo, tiles, upscale
from stages.common import UsageError, command, human_echo
from stages.tools.args import check_json_out, check_range, check_scale
from stages.tools.batch import Batch, tile_bar
from stages.tools.model_ref import MODEL_HELP, load


def _targets(images: list[Path], out: Path, factor: int, overwrite: bool) -> list[Path]:
    """Each image's output, refused before any is written when two would share one, one would replace an
    input, or one exists and --overwrite was not given."""
    targets = [out / f"{path.stem}_x{factor}.png" for path in images]
    first: dict[Path, Path] = {}
    for path, target in zip(images, targets, strict=True):
        if target in first:
            raise UsageError(f"{first[target]} and {path} would both be written to {target}; "
                             "upscale them into different --out folders")
        first[target] = path
    inputs = {path.resolve() for path in images}
    for target in targets:
        if target.resolve() in inputs:
            raise UsageError(f"{target} is also an input; choose another --out")
        if os.path.lexists(target) and not overwrite:
            raise UsageError(f"{target} already exists; --overwrite replaces it")
        if out.is_dir() and (why := unwritable(target)):
            raise UsageError(f"{target}: {why}")
    return targets


@command
def upscale_cmd(
    images: list[Path] = typer.Argument(..., help="image files (PNG, JPEG, ...)"),
    out: Path = typer.Option(..., help="folder for the upscaled PNGs (<name>_x<scale>.png)"),
    model: str = typer.Option("lsrcnn", help=MODEL_HELP),
    scale: int | None = typer.Option(None, help="2, 3 or 4: which scale of a variant trained at several "
                                     "(default: the lowest)"),
    seed: int | None = typer.Option(None, help="which seed's model of a trained variant (default: the lowest)"),
    tile: int = typer.Option(256, help="tile side in input pixels (bounds memory), at least 16"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace output PNGs that already exist (without "
                                   "it, an existing one stops the command before any work)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write {model, scale, images: [{file, out, "
                                         "width, height}], refused: [{file, error}]} here ('-': stdout)"),
) -> None:
    """Upscale images by a trained SR model's factor. An image that cannot be read is one error line; the others
    are still upscaled, and the exit code is 1."""
    check_json_out(json_out)
    check_scale(scale)
    check_range("--seed", seed, 0)
    check_range("--tile", tile, 16)
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise UsageError(f"not a file: {', '.join(missing)}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    net, spec = load(model, "sr", scale, seed)
    factor = spec["data_args"]["scale"]
    targets = _targets(images, out, factor, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    say = human_echo(json_out)
    target_of = dict(zip(images, targets, strict=True))
    batch = Batch(images, read_photo)
    results = []
    for path, photo in batch:
        target = target_of[path]
        with tile_bar(tiles(photo, tile), path.name) as bar:
            sr = upscale(net, photo, factor, tile=tile, device=default_device(), tick=bar.update)
        save_image(sr, target)
        results.append({"file": str(path), "out": str(target), "width": sr.shape[2], "height": sr.shape[1]})
        say(f"{path} -> {target} ({sr.shape[2]}x{sr.shape[1]})")
    if json_out:
        write_json(json_out, {"model": model, "scale": factor, "images": results, "refused": batch.refused})
    batch.finish()
