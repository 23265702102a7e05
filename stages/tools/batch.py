"""A tool's images, one at a time: a file that cannot be used is reported and the others are still answered.

The rule (classify, upscale): each refused image is one line on stderr (``error: <file>: <why>``) when it
is reached; every other image is answered as usual, the ``--json`` file lists the refused ones under
``refused``, and the command exits 1 if any was refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import typer

from pipeline.core.errors import ImageError

T = TypeVar("T")


class Batch(Generic[T]):
    def __init__(self, paths: list[Path], read: Callable[[Path], T]):
        self.paths, self.read = paths, read
        self.refused: list[dict] = []

    def __iter__(self) -> Iterator[tuple[Path, T]]:
        for path in self.paths:
            try:
                image = self.read(path)
            except ImageError as refused:
                typer.echo(f"error: {refused}", err=True)
                self.refused.append({"file": str(path), "error": str(refused)})
                continue
            yield path, image

    def finish(self) -> None:
        """Exit 1 when any image was refused (after the caller wrote what it has)."""
        if self.refused:
            raise typer.Exit(1)


def tile_bar(total: int, name: str):
    """A progress bar over an image's tiles on stderr when it is a terminal; without one it draws nothing
    (each finished image is already one line on stdout)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="tile", leave=False, file=sys.stderr, disable=not sys.stderr.isatty())
