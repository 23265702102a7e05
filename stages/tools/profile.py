"""profile NAME: merge profiles/NAME.yaml into params.yaml (pipeline/config/profiles.py)."""

from __future__ import annotations

import typer

from pipeline.config.profiles import apply_profile
from stages.common import ROOT, command, names_hint


@command
def profile(name: str = typer.Argument(..., help=f"a file profiles/NAME.yaml, {names_hint('profiles')}")) -> None:
    """Apply a profile overlay to params.yaml (undo with `git checkout params.yaml`)."""
    apply_profile(ROOT, name)
    typer.echo(f"params.yaml now uses profile '{name}'")
