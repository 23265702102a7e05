"""`lstmvision team server --db ...` against a real PostgreSQL cluster (password authentication, see
helpers/postgres.py): credentials in the URL are refused before anything is written, and a wrong password,
database or address fails in one line within seconds instead of MLflow's server retrying."""

import socket
import time
import urllib.parse

import pytest

from pipeline.tracking.team import CONNECT_TIMEOUT_S


@pytest.fixture
def server(cli, root, tmp_path, monkeypatch):
    """server(db, **env): `lstmvision team server --db db` with only ``env``'s database password (none from the
    caller's environment or ~/.pgpass); returns (process, seconds it took)."""
    for name in ("PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()

    def run(db: str, **env: str):
        start = time.monotonic()
        # A refusal that did not happen would start the server: the timeout ends the test then.
        proc = cli(["team", "server", "--db", db, "--artifacts", str(tmp_path / "artifacts")], root, timeout=60,
                   env={"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "cache"),
                        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-key", **env})
        return proc, time.monotonic() - start

    run.home = home
    run.config_dir = tmp_path / "cache"
    return run


def _one_line_error(proc) -> str:
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return err


def _with(db: str, **parts: str) -> str:
    return urllib.parse.urlsplit(db)._replace(**parts).geturl()


# Each form puts the database's real password where SQLAlchemy (MLflow's URL parser) hands it to libpq.
SECRET_IN_URL = {
    "user-info": lambda db, pw: db.replace("mlflow@", f"mlflow:{pw}@"),
    "password": lambda db, pw: f"{db}?password={pw}",
    "percent-encoded name": lambda db, pw: f"{db}?sslmode=prefer&pass%77ord={pw}",
    "sslpassword": lambda db, pw: f"{db}?sslpassword={pw}",
    "oauth_client_secret": lambda db, pw: f"{db}?oauth_client_secret={pw}",
    "scram_client_key": lambda db, pw: f"{db}?scram_client_key={pw}",
    "after a '#'": lambda db, pw: f"{db}#?password={pw}",  # not a fragment to SQLAlchemy: a query
    "psycopg driver": lambda db, pw: f"{db}?password={pw}".replace("postgresql://", "postgresql+psycopg://"),
}


@pytest.mark.parametrize("form", SECRET_IN_URL)
def test_a_secret_in_the_url_is_refused_before_anything_is_written(postgres, server, form):
    db, password = postgres
    proc, _ = server(SECRET_IN_URL[form](db, password))
    assert proc.returncode == 2
    err = _one_line_error(proc)
    assert "the URL holds a secret" in err and "PGPASSWORD or ~/.pgpass" in err
    assert password not in proc.stderr + proc.stdout
    assert not server.config_dir.exists()  # the auth config would have held the URL


def test_a_wrong_password_fails_in_one_line_at_once(postgres, server):
    db, password = postgres
    proc, took = server(db, PGPASSWORD=f"not-{password}")
    assert proc.returncode == 1
    err = _one_line_error(proc)
    assert err.startswith(f"error: --db {db}: the database refused the login")
    assert 'password authentication failed for user "mlflow"' in err and "PGPASSWORD or ~/.pgpass" in err
    assert took < 15  # MLflow's server retried for 25 s and more
    assert not server.config_dir.exists()


def test_no_password_says_where_to_put_it(postgres, server):
    db, _ = postgres
    proc, _ = server(db)
    assert proc.returncode == 1
    assert _one_line_error(proc) == (f"error: --db {db}: the database asks for a password; set PGPASSWORD or add it "
                                     "to ~/.pgpass")


def test_an_unknown_database_is_named_and_pgpass_is_read(postgres, server):
    db, password = postgres
    host, port = urllib.parse.urlsplit(db).hostname, urllib.parse.urlsplit(db).port
    pgpass = server.home / ".pgpass"
    pgpass.write_text(f"{host}:{port}:*:mlflow:{password}\n")
    pgpass.chmod(0o600)  # libpq ignores a ~/.pgpass that others can read
    missing = _with(db, path="/no_such_db")
    proc, took = server(missing)
    assert proc.returncode == 1
    # authenticated (the password came from ~/.pgpass), then the database was looked up
    assert _one_line_error(proc).startswith(f'error: --db {missing}: database "no_such_db" does not exist; create it')
    assert took < 15


def _silent_port():
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def test_no_server_at_the_address_fails_in_one_line(postgres, server, free_port):
    db, password = postgres
    for netloc, reason in ((f"mlflow@127.0.0.1:{free_port()}", "(Connection refused)"),
                           ("mlflow@no-such-host.invalid", "no-such-host.invalid")):
        proc, took = server(_with(db, netloc=netloc), PGPASSWORD=password)
        assert proc.returncode == 1
        err = _one_line_error(proc)
        assert "no PostgreSQL server reached" in err and reason in err and "fix the host and port" in err
        assert took < 15


def test_a_server_that_never_answers_times_out_in_one_line(postgres, server):
    db, password = postgres
    with _silent_port() as listener:
        proc, took = server(_with(db, netloc=f"mlflow@127.0.0.1:{listener.getsockname()[1]}"), PGPASSWORD=password)
    assert proc.returncode == 1
    assert f"no answer from the database within {CONNECT_TIMEOUT_S} s" in _one_line_error(proc)
    assert CONNECT_TIMEOUT_S <= took < CONNECT_TIMEOUT_S + 15


def test_an_option_libpq_does_not_know_is_a_usage_error(postgres, server):
    db, password = postgres
    proc, _ = server(f"{db}?sslmod=require", PGPASSWORD=password)
    assert proc.returncode == 2
    assert _one_line_error(proc) == f'error: --db {db}?sslmod=require: invalid connection option "sslmod"'


@pytest.mark.parametrize("db", ["mysql://mlflow:hunter2-secret@127.0.0.1/mlflow",
                                "postgresql://mlflow:hunter2-secret@127.0.0.1:port/mlflow", "hunter2-secret"])
def test_a_url_that_is_not_postgresql_is_a_usage_error_that_does_not_repeat_it(server, db):
    proc, _ = server(db)
    assert proc.returncode == 2
    assert _one_line_error(proc) == "error: --db: expected postgresql://USER@HOST:PORT/DATABASE"
