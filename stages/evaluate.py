"""evaluate NAME: test metrics of every seed -> metrics/NAME.json (DVC metrics), eval/NAME/.

eval/NAME/ holds per_image.csv (every test image's result for every seed: what
the report's tie/difference tests read), speed.json and sample outputs. The
variant's task evaluates it (pipeline/tasks/<task>/evaluate.py). Files only: the
report stage attaches the test figures to the MLflow runs, in one process for
every variant (importing MLflow costs seconds per process).

``evaluate bicubic`` scores the untrained baseline on the same images.
"""

from __future__ import annotations

import json

import typer

from pipeline import tasks
from pipeline.config.architectures import BASELINES, task_of
from pipeline.core.atomic import atomic_dir, write_json
from pipeline.imaging.images import save_image
from pipeline.tasks.base import Inputs
from stages.common import EVAL, METRICS, MODELS, PREPARED, RAW, UsageError, command, names_hint, params


@command
def main(name: str = typer.Argument(..., help=f"a baseline ({', '.join(BASELINES)}) or a variant, "
                                              f"{names_hint('variants')}")) -> None:
    """Score variant NAME (or a baseline) on the test data under the published protocol, every seed."""
    p = params()
    if name not in BASELINES and name not in p.variants:
        raise UsageError(f"unknown variant '{name}'")
    task = task_of(name, p.variants)
    result = tasks.evaluation(task).evaluate(name, p, Inputs(RAW, PREPARED, MODELS / task))
    with atomic_dir(EVAL / name) as out:
        for file, image in result.samples.items():
            save_image(image, out / file)
        result.per_image.to_csv(out / "per_image.csv", index=False)
        write_json(out / "speed.json", result.speed)
        # What the report reads; warnings (a seed that learned nothing) go on to the report and the MLflow runs.
        write_json(out / "metrics.json", {"test": result.metrics} | ({"warnings": result.warnings}
                                                                      if result.warnings else {}))
        # Last, inside the block: if it cannot be written, eval/NAME is not replaced either.
        write_json(METRICS / f"{name}.json", {"test": result.metrics})  # what `dvc metrics` reads
    print(f"{name}: {json.dumps(result.metrics)}")
    for line in result.warnings.values():
        typer.echo(f"WARNING {name} {line}", err=True)
