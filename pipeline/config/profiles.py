"""Profiles: overlays in profiles/NAME.yaml merged into params.yaml (one protocol, several sizes), the
result validated before it is written (atomically)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.config.schema import NAME, parse_params
from pipeline.core.atomic import write_text
from pipeline.core.errors import ParamsError


def merge(base: dict, overlay: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in the overlay replaces."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _mapping(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ParamsError(f"{path.name}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path.name}: the top level must be a mapping")
    return data


def overlay(root: Path, name: str, seen: tuple[str, ...] = ()) -> dict:
    """profiles/NAME.yaml, merged over the profile it ``extends`` (one protocol, several sizes)."""
    path = root / "profiles" / f"{name}.yaml"
    if not NAME.match(name) or not path.is_file():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise ParamsError(f"no profile '{name}', expected one of {', '.join(known)}")
    if name in seen:
        raise ParamsError(f"profiles: '{name}' extends itself through {' -> '.join(seen)}")
    data = _mapping(path)
    base = data.pop("extends", None)
    if base is not None and not isinstance(base, str):
        raise ParamsError(f"{path.name}: extends must name one profile")
    return merge(overlay(root, base, (*seen, name)), data) if base else data


def apply_profile(root: Path, name: str) -> None:
    """Merge profiles/NAME.yaml (and what it extends) into root/params.yaml, validated before it is written."""
    params_path = root / "params.yaml"
    merged = merge(_mapping(params_path), overlay(root, name))
    parse_params(merged)
    write_text(params_path, f"# profile {name} applied over the defaults (profiles/{name}.yaml)\n"
               + yaml.safe_dump(merged, sort_keys=False))
