"""The `lstmvision` command: every DVC stage and the user tools, one typer app.

Only the module of the command being run is imported (torch, Lightning and
MLflow take seconds to import); the help listing imports them all. dvc.yaml
runs the stages without this dispatcher (`python -m stages STAGE`).
"""

from __future__ import annotations

import sys

import typer

from stages.startup import import_quietly, run

COMMANDS = {
    "download": ("stages.download", "main"),
    "split": ("stages.split", "main"),
    "patches": ("stages.patches", "main"),
    "train": ("stages.train", "main"),
    "evaluate": ("stages.evaluate", "main"),
    "report": ("stages.report", "main"),
    "bench": ("stages.bench", "main"),
    "check": ("stages.tools.check", "check"),
    "profile": ("stages.tools.profile", "profile"),
    "benchmark-sr": ("stages.tools.benchmark_sr", "benchmark_sr"),
    "classify": ("stages.tools.classify", "classify_cmd"),
    "upscale": ("stages.tools.upscale", "upscale_cmd"),
    "fetch": ("stages.tools.fetch", "fetch_cmd"),
    "team": ("stages.tools.team", "team"),
    "fanout": ("stages.tools.fanout", "fanout_cmd"),
}


def build_app(only: str | None = None) -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        """Recurrent networks on images: the stages dvc.yaml runs, and tools."""

    wanted = {name: entry for name, entry in COMMANDS.items() if only in (None, name)}
    modules = import_quietly(*(module for module, _ in wanted.values()))
    for (name, (_, attr)), module in zip(wanted.items(), modules, strict=True):
        found = getattr(module, attr)
        if isinstance(found, typer.Typer):  # a group of subcommands
            app.add_typer(found, name=name)
        else:
            app.command(name)(found)
    return app


def main() -> None:
    run(build_app(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None))


if __name__ == "__main__":
    main()
