"""fetch: the pipeline's verified download and safe extraction, as a user tool."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.data.fetch import fetch
from stages.common import UsageError, command


@command
def fetch_cmd(
    url: str = typer.Argument(..., help="http(s) URL of a file or .tar/.tar.gz/.tgz/.zip archive"),
    sha256: str = typer.Option(..., help="expected sha256 of the download"),
    into: Path = typer.Option(..., help="folder to place or extract into"),
) -> None:
    """Download, verify and (for archives) safely extract into a folder; the folder is untouched on refusal."""
    if len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256):
        raise UsageError("--sha256 must be 64 hex digits")
    fetch(url, sha256, into)
    typer.echo(f"{url} -> {into}")
