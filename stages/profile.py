"""profile NAME: merge profiles/NAME.yaml into params.yaml (validated first, written atomically)."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from pipeline.atomic import write_text
from pipeline.config import parse_params
from stages.common import ROOT, UsageError, command


def merge(base: dict, overlay: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in the overlay replaces."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_profile(root: Path, name: str) -> None:
    """Merge profiles/NAME.yaml into root/params.yaml; the result is validated before it is written."""
    overlay_path = root / "profiles" / f"{name}.yaml"
    if not overlay_path.is_file():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise UsageError(f"no profile '{name}', expected one of {', '.join(known)}")
    params_path = root / "params.yaml"
    merged = merge(yaml.safe_load(params_path.read_text()), yaml.safe_load(overlay_path.read_text()) or {})
    parse_params(merged)
    write_text(params_path, f"# profile {name} applied over the defaults (profiles/{name}.yaml)\n"
               + yaml.safe_dump(merged, sort_keys=False))


@command
def profile(name: str = typer.Argument(..., help="a file profiles/NAME.yaml")) -> None:
    """Apply a profile overlay to params.yaml (undo with `git checkout params.yaml`)."""
    apply_profile(ROOT, name)
    typer.echo(f"params.yaml now uses profile '{name}'")
