"""team server | add-user | grant: the team's MLflow tracking server and who may use it (pipeline/tracking/team.py)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from stages.common import UsageError, command
from stages.tools.args import check_range

team = typer.Typer(no_args_is_help=True, help="The team's MLflow server (PostgreSQL, proxied artifacts, basic "
                   "auth): start it, add users, grant permissions.")

SERVER = typer.Option(..., "--server", envvar="MLFLOW_TRACKING_URI", help="the team server (MLFLOW_TRACKING_URI)")


def _http(uri: str) -> str:
    if not uri.startswith(("http://", "https://")):
        raise UsageError(f"--server {uri}: expected the team server's http(s):// address")
    return uri


@team.command("server")
@command
def server(db: str = typer.Option(..., help="postgresql://USER@HOST:PORT/DATABASE (password: PGPASSWORD or "
                                  "~/.pgpass)"),
           artifacts: str = typer.Option(..., help="where the server keeps artifacts: a folder, s3://..., ..."),
           host: str = typer.Option("127.0.0.1", help="0.0.0.0 to serve the network"),
           port: int = typer.Option(5000, help="1 to 65535"),
           workers: int = typer.Option(2, help="at least 1"),
           admin: str = typer.Option("admin", help="the admin user made on first start (password: "
                                     "MLFLOW_AUTH_ADMIN_PASSWORD)"),
           default_permission: str = typer.Option("READ", help="what a user may do where nobody granted more")) -> None:
    """Start the team's tracking server (runs until stopped). Needs the `team` extra."""
    check_range("--port", port, 1, 65535)
    check_range("--workers", workers, 1)
    from pipeline.tracking.team import server_command

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lstmvision"
    argv, env = server_command(db, artifacts, host, port, workers, default_permission.upper(), admin, cache)
    os.execve(argv[0], argv, env)


@team.command("add-user")
@command
def add_user_cmd(username: str, server_uri: str = SERVER,
                 password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                              envvar="LSTMVISION_NEW_USER_PASSWORD",
                                              help="the new user's password (12+ characters)")) -> None:
    """Add a user to the team server, as an admin (MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    from pipeline.tracking.team import add_user

    add_user(_http(server_uri), username, password)
    typer.echo(f"added user '{username}'")


@team.command("grant")
@command
def grant_cmd(username: str, permission: str = typer.Argument(..., help="READ, USE, EDIT, MANAGE or NO_PERMISSIONS"),
              experiment: list[str] = typer.Option([], help="an experiment (repeat); default: all"),
              model: list[str] = typer.Option([], help="a registered model (repeat); default: all"),
              server_uri: str = SERVER) -> None:
    """Give USERNAME PERMISSION on experiments and registered models, as an admin."""
    from pipeline.tracking.team import grant

    granted = grant(_http(server_uri), username, permission.upper(), experiment, model)
    for target in granted:
        typer.echo(f"{username}: {permission.upper()} on {target}")
    if not granted:
        typer.echo("nothing granted: the server has no experiments or registered models yet")
