"""bench: speed figures (LSTM kernels, bicubic resize, patch extraction) as JSON, on CPU and GPU if any."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import typer

from pipeline.atomic import write_json
from pipeline.bench import lstm_kernels, patch_throughput, resize_throughput
from stages.common import command


@command
def bench(
    json_out: Path = typer.Option(None, "--json", help="also write the figures here"),
    quick: bool = typer.Option(False, help="small shapes, for a smoke test"),
) -> None:
    """Measure the gate LSTM against nn.LSTM and the image kernels; prints JSON."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    # PyTorch's fastrnns shape (hidden 512, 100 steps) and lstm_gates' own (28 rows of 28 pixels, hidden 128)
    shapes = ([{"batch": 8, "steps": 10, "features": 8, "hidden": 16, "repeats": 2}] if quick else
              [{"batch": 64, "steps": 100, "features": 64, "hidden": 512},
               {"batch": 64, "steps": 28, "features": 28, "hidden": 128}])
    result = {
        "lstm": [lstm_kernels(d, **shape) for d in devices for shape in shapes],
        "resize": [resize_throughput(d, side=64 if quick else 512) for d in devices],
        "patches": patch_throughput(side=96 if quick else 512),
    }
    typer.echo(json.dumps(result, indent=2))
    if json_out:
        write_json(json_out, result)
