"""Checks of the tools' arguments, made before minutes of computation, not after."""

from __future__ import annotations

import os
from pathlib import Path

from stages.common import UsageError


def check_json_out(path: Path | None) -> None:
    """--json OUT is checked before minutes of computation, not after."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--json {path}: is a folder")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise UsageError(f"--json {path}: cannot write into {path.parent}")
