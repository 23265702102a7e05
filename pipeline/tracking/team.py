"""The team's MLflow tracking server: PostgreSQL behind it, artifacts proxied, MLflow's basic auth in front.

Secrets never go on a command line or into the repository: the database password
comes from libpq (``PGPASSWORD`` or ``~/.pgpass``), the admin's first password
from ``MLFLOW_AUTH_ADMIN_PASSWORD``, the CSRF key from
``MLFLOW_FLASK_SERVER_SECRET_KEY``, and every client's credentials from
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import urllib.parse
import warnings
from pathlib import Path

from pipeline.core.errors import ParamsError, TrackingError
from pipeline.tracking.store import explain

PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
# The auth tables (their own alembic version table) live in the tracking database; a password
# check is a slow PBKDF2 hash (~1 s here), so a verified login is remembered for a minute.
AUTH_CONFIG = """[mlflow]
default_permission = {default_permission}
database_uri = {db}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = 60
"""


def _check_db(db: str) -> None:
    url = urllib.parse.urlsplit(db)
    if url.scheme not in ("postgresql", "postgresql+psycopg"):
        raise ParamsError(f"--db {db}: expected postgresql://USER@HOST:PORT/DATABASE")
    if url.password:
        raise ParamsError("--db: leave the password out of the URL (it would show in `ps`); "
                          "put it in PGPASSWORD or ~/.pgpass")
    if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("flask_wtf") is None:
        raise ParamsError("the team server needs the PostgreSQL driver and MLflow's auth extra: "
                          "pip install -e '.[team]'")


def server_command(db: str, artifacts: str, host: str, port: int, workers: int, default_permission: str,
                   admin: str, config_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The `mlflow server` command line and environment for the team server; writes its auth config."""
    _check_db(db)
    if not os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        raise ParamsError("set MLFLOW_FLASK_SERVER_SECRET_KEY (the same on every restart), e.g. export "
                          "MLFLOW_FLASK_SERVER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')")
    if default_permission not in PERMISSIONS:
        raise ParamsError(f"--default-permission {default_permission}: expected one of {', '.join(PERMISSIONS)}")
    config_dir.mkdir(parents=True, exist_ok=True)
    config = config_dir / f"basic_auth-{port}.ini"
    config.write_text(AUTH_CONFIG.format(default_permission=default_permission, db=db, admin=admin))
    argv = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--serve-artifacts", "--artifacts-destination", artifacts,
            "--host", host, "--port", str(port), "--workers", str(workers)]
    # The backend URI through MLflow's environment variable keeps it off the process list too.
    return argv, {**os.environ, "MLFLOW_BACKEND_STORE_URI": db, "MLFLOW_AUTH_CONFIG_PATH": str(config)}


def _admin_client(uri: str):
    """MLflow's auth client, acting with the credentials in MLFLOW_TRACKING_USERNAME/PASSWORD."""
    warnings.filterwarnings("ignore", message=r"starlette\.middleware\.wsgi is deprecated")  # MLflow's, not ours
    from mlflow.server import get_app_client

    if not os.environ.get("MLFLOW_TRACKING_USERNAME") or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        raise TrackingError("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an admin's credentials")
    return get_app_client("basic-auth", tracking_uri=uri)


def add_user(uri: str, username: str, password: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        _admin_client(uri).create_user(username, password)
    except MlflowException as exc:
        raise TrackingError(f"{uri}: cannot add user '{username}': {explain(exc, uri)}") from None


def grant(uri: str, username: str, permission: str, experiments: list[str], models: list[str]) -> list[str]:
    """Give ``username`` ``permission`` on the named experiments and registered models (none named: every
    one on the server); returns what was granted, as 'experiment NAME' / 'model NAME'."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if permission not in PERMISSIONS:
        raise ParamsError(f"permission {permission}: expected one of {', '.join(PERMISSIONS)}")
    auth = _admin_client(uri)
    client = mlflow.MlflowClient(uri)
    try:
        if not experiments and not models:
            experiments = [e.name for e in client.search_experiments() if e.name != "Default"]
            models = [m.name for m in client.search_registered_models()]
        targets = []
        for name in experiments:
            found = client.get_experiment_by_name(name)
            if found is None:
                raise TrackingError(f"{uri}: no experiment named '{name}'")
            targets.append(("experiment", found.experiment_id, f"experiment {name}"))
        targets += [("registered_model", name, f"model {name}") for name in models]
        for kind, key, _ in targets:
            auth.grant_user_permission(username, kind, key, permission)
    except MlflowException as exc:
        raise TrackingError(f"{uri}: cannot grant {permission} to '{username}': {explain(exc, uri)}") from None
    return [label for *_, label in targets]

