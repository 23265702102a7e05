"""`python -m stages STAGE [ARGS]`: how dvc.yaml runs a stage, straight from its module (stages/STAGE.py),
so that a stage's code deps are what it runs and editing the `lstmvision` command list (stages/cli.py)
re-runs nothing. People use `lstmvision STAGE` for the same."""

import sys

import typer

from stages.startup import import_quietly, run

STAGES = ("download", "split", "patches", "train", "evaluate", "bench", "report")

if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
    sys.exit(f"usage: python -m stages {{{','.join(STAGES)}}} [ARGS]; the tools are `lstmvision --help`")
(stage,) = import_quietly(f"stages.{sys.argv[1]}")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command(sys.argv[1])(stage.main)
sys.argv = [f"python -m stages {sys.argv[1]}", *sys.argv[2:]]
run(app)
