"""Checks of the tools' arguments, made before minutes of computation, not after.

Numbers are checked here rather than with typer's ``min=``/``max=``: typer reports those in a box of
several lines, the tools' refusals are one line (exit 2)."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.atomic import unwritable
from stages.common import UsageError


def check_json_out(path: Path | None) -> None:
    """--json OUT ('-': stdout) is checked before minutes of computation, not after."""
    if path is not None and (why := unwritable(path)):
        raise UsageError(f"--json {path}: {why}")


def check_range(option: str, value: int | None, low: int, high: int | None = None) -> None:
    """An integer option within [low, high] (None: not given, the default applies)."""
    if value is not None and (value < low or (high is not None and value > high)):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{option} must be {bound}, got {value}")


def check_scale(scale: int | None) -> None:
    """--scale is one the protocol defines; None: not given."""
    if scale is not None and scale not in (2, 3, 4):
        raise UsageError(f"--scale must be 2, 3 or 4, got {scale}")
