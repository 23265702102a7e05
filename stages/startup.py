"""Start-up of a command process: DVC starts one per stage, so what a start and an exit cost is paid per stage.

Importing torch, Lightning and MLflow creates millions of long-lived objects: collecting while importing
them, and walking them again at exit, costs ~1 s and ~2 s here. Frozen objects are skipped by the
collector; atexit handlers and stream flushing still run. Imports nothing heavy itself.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable
from types import ModuleType

from pipeline.core.host import keep_freed_memory


def import_quietly(*modules: str) -> list[ModuleType]:
    """Import ``modules`` with the collector off, then freeze what they made."""
    keep_freed_memory()
    gc.disable()
    try:
        return [importlib.import_module(m) for m in modules]
    finally:
        gc.freeze()
        gc.enable()


def run(app: Callable[[], object]) -> None:
    """Run a typer app; what it leaves behind is frozen, not walked again at exit."""
    try:
        app()
    finally:
        gc.freeze()
