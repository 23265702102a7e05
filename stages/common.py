"""What every command shares: params loading, paths, and one-line errors with exit codes.

Exit codes: 2 for bad params, arguments or input files, 1 for any other refusal
(data, download, tracking, divergence, a file that cannot be written), 130/143
when Ctrl-C/SIGTERM stopped the work; the message is one line on stderr.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import typer
import yaml

from pipeline.config.schema import Params, load_params
from pipeline.core.errors import LstmvisionError, ParamsError

ROOT = Path.cwd()
RAW = Path("data/raw")
PREPARED = Path("data/prepared")
MODELS = Path("models")
METRICS = Path("metrics")
EVAL = Path("eval")
PLOTS = Path("plots")
REPORTS = Path("reports")
WORK = Path(".lstmvision/work")


class UsageError(ParamsError):
    """A bad command-line argument; exit code 2."""


def params() -> Params:
    return load_params(ROOT / "params.yaml")


def human_echo(json_out: Path | None):
    """typer.echo for a command's human-readable lines: stdout, or stderr when ``--json -`` puts the JSON on
    stdout, so that stdout parses as JSON (and the lines still show)."""
    to_stderr = json_out is not None and str(json_out) == "-"
    return lambda text: typer.echo(text, err=to_stderr)


def names_hint(what: str) -> str:
    """For --help: the variant names of params.yaml (what='variants') or the profiles (what='profiles'),
    read without validation so that help works whatever state params.yaml is in."""
    if what == "profiles":
        names = sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml"))
    else:
        try:
            names = list(yaml.safe_load((ROOT / "params.yaml").read_text())["variants"])
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            names = []
    return f"one of: {', '.join(names)}" if names else "(none found here)"


def command(fn):
    """Run a stage body, turning known failures into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
        try:
            return fn(*args, **kwargs)
        except LstmvisionError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except FileNotFoundError as exc:
            typer.echo(f"error: {exc.filename or exc}: not found (has the stage before this one run?)", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # unwritable folder, full disk, ...: nothing was committed (atomic writes)
            typer.echo(f"error: {exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted; nothing was written (outputs are replaced only when complete)", err=True)
            raise typer.Exit(130) from None

    return wrapper
