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
import warnings
from pathlib import Path

from pipeline.core.errors import ParamsError, TrackingError, first_line
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

# libpq's connection parameters that carry a secret: those PQconndefaults() marks as such (password,
# sslpassword, oauth_client_secret) and the SCRAM keys, which log in as well as the password does.
SECRET_PARAMS = frozenset({"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"})
CONNECT_TIMEOUT_S = 5  # the first connection's limit: a wrong URL fails in seconds, not after MLflow's retries
# libpq's wording (the server's FATAL message or the client's own) of the failures a user can act on
AUTH_FAILED = ("authentication failed", "no password supplied", "pg_hba.conf", 'role "')
UNREACHABLE = ("Connection refused", "resolve host", "translate host name", "No route to host", "unreachable")


def _connect_args(db: str) -> tuple[list, dict]:
    """The arguments MLflow's SQLAlchemy gives psycopg for ``db`` (user-info and query parameters,
    percent-decoded): the secrets check and the first connection see what MLflow's server would."""
    import sqlalchemy

    try:
        url = sqlalchemy.make_url(db)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        url = None
    # The URL is not repeated in these messages: it may hold the secret being refused.
    if url is None or url.drivername not in ("postgresql", "postgresql+psycopg"):
        raise ParamsError("--db: expected postgresql://USER@HOST:PORT/DATABASE")
    args, kwargs = url.get_dialect()().create_connect_args(url)
    secrets = sorted({key for key in kwargs if key.lower() in SECRET_PARAMS})
    if secrets:
        raise ParamsError(f"--db: the URL holds a secret ({', '.join(secrets)}), which would show in `ps` and in the "
                          "server's config file; give the database password through PGPASSWORD or ~/.pgpass")
    return args, kwargs


def _connection_failure(db: str, exc: Exception) -> str:
    """psycopg's refusal of the first connection as one line that says what to fix."""
    import psycopg

    text = str(exc)
    # libpq's line for the (last) host tried, without its 'connection to server at ... failed:' prefix
    line = next((ln for ln in reversed(text.splitlines()) if "failed: " in ln), text.strip().splitlines()[0])
    detail = line.split("failed: ")[-1].removeprefix("FATAL:").strip()
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return (f"--db {db}: no answer from the database within {CONNECT_TIMEOUT_S} s; is PostgreSQL running "
                "there, and are the host and port right?")
    if "no password supplied" in text:
        return f"--db {db}: the database asks for a password; set PGPASSWORD or add it to ~/.pgpass"
    if any(sign in text for sign in AUTH_FAILED):
        return f"--db {db}: the database refused the login ({detail}); check the user, and PGPASSWORD or ~/.pgpass"
    if 'database "' in text and "does not exist" in text:
        return f"--db {db}: {detail}; create it (createdb --owner USER DATABASE) or fix the URL"
    if any(sign in text for sign in UNREACHABLE):
        return f"--db {db}: no PostgreSQL server reached ({detail}); start it, or fix the host and port"
    return f"--db {db}: cannot connect: {first_line(detail)}"


def _check_db(db: str) -> None:
    """Refuse credentials in the URL, then connect once: a wrong password, database or host is one line now
    rather than MLflow's server retrying for half a minute."""
    if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("flask_wtf") is None:
        raise ParamsError("the team server needs the PostgreSQL driver and MLflow's auth extra: "
                          "pip install -e '.[team]'")
    import psycopg

    args, kwargs = _connect_args(db)
    try:
        psycopg.connect(*args, **{**kwargs, "connect_timeout": CONNECT_TIMEOUT_S}).close()
    except psycopg.OperationalError as exc:
        raise TrackingError(_connection_failure(db, exc)) from None
    except psycopg.ProgrammingError as exc:  # a query parameter libpq does not know
        raise ParamsError(f"--db {db}: {first_line(exc)}") from None


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


def _refused(exc: Exception, uri: str, who_may: str) -> str:
    """explain(), except for a 403: store.explain's advice (have an admin grant EDIT) cannot help with
    what only an admin may do."""
    if getattr(exc, "error_code", "") == "PERMISSION_DENIED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        return (f"user '{user}' may not (HTTP 403): {who_may}; run it with an admin's MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD")
    return explain(exc, uri)


def add_user(uri: str, username: str, password: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        _admin_client(uri).create_user(username, password)
    except MlflowException as exc:
        raise TrackingError(f"{uri}: cannot add user '{username}': "
                            f"{_refused(exc, uri, 'only an admin adds users')}") from None


def grant(uri: str, username: str, permission: str, experiments: list[str], models: list[str]) -> list[str]:
    """Give ``username`` ``permission`` on the named experiments and registered models (none named: every
    one on the server); returns what was granted, as 'experiment NAME' / 'model NAME'."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if permission not in PERMISSIONS:
        raise ParamsError(f"permission {permission}: expected one of {', '.join(PERMISSIONS)}")
    auth = _admin_client(uri)
    client = mlflow.MlflowClient(uri)
    target = ""  # the experiment or model being granted on, for the message
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
        for kind, key, label in targets:
            target = f" on {label}"
            auth.grant_user_permission(username, kind, key, permission)
    except MlflowException as exc:
        who_may = "only an admin, or a user who manages an experiment or model, grants permissions on it"
        raise TrackingError(f"{uri}: cannot grant {permission} to '{username}'{target}: "
                            f"{_refused(exc, uri, who_may)}") from None
    return [label for *_, label in targets]
