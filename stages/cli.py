"""The `lstmvision` command: every DVC stage and the user tools, one typer app.

Only the module of the command being run is imported (torch, Lightning and
MLflow take seconds to import, and DVC starts a process per stage); the help
listing imports them all.
"""

from __future__ import annotations

import gc
import importlib
import sys

import typer

from pipeline.core.host import keep_freed_memory

COMMANDS = {
    "download": ("stages.download", "download"),
    "split": ("stages.split", "split"),
    "patches": ("stages.patches", "patches"),
    "train": ("stages.train", "train_cmd"),
    "evaluate": ("stages.evaluate", "evaluate_cmd"),
    "report": ("stages.report", "report"),
    "check": ("stages.tools.check", "check"),
    "profile": ("stages.tools.profile", "profile"),
    "benchmark-sr": ("stages.tools.benchmark_sr", "benchmark_sr"),
    "classify": ("stages.tools.classify", "classify_cmd"),
    "upscale": ("stages.tools.upscale", "upscale_cmd"),
    "fetch": ("stages.tools.fetch", "fetch_cmd"),
    "bench": ("stages.bench", "bench"),
    "team": ("stages.tools.team", "team"),
}


def build_app(only: str | None = None) -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        """Recurrent networks on images: the stages dvc.yaml runs, and tools."""

    for name, (module, attr) in COMMANDS.items():
        if only in (None, name):
            found = getattr(importlib.import_module(module), attr)
            if isinstance(found, typer.Typer):  # a group of subcommands
                app.add_typer(found, name=name)
            else:
                app.command(name)(found)
    return app


def main() -> None:
    wanted = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None
    # DVC starts a process per stage, so start-up and exit are paid per stage.
    # Importing torch, Lightning and MLflow creates millions of long-lived
    # objects: collecting while importing them, and walking them again at
    # exit, costs ~1 s and ~2 s here. Frozen objects are skipped by the
    # collector; atexit handlers and stream flushing still run.
    keep_freed_memory()
    gc.disable()
    app = build_app(wanted)
    gc.freeze()
    gc.enable()
    try:
        app()
    finally:
        gc.freeze()
