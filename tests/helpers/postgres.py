"""A throw-away PostgreSQL cluster from Debian's server binaries, on 127.0.0.1 and a free port."""

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.processes import free_port


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (not on PATH: /usr/lib/postgresql/N/bin), or any on PATH."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def cluster() -> Iterator[tuple[str, str]]:
    """Run as an unprivileged user (PostgreSQL refuses root), password authentication: yields (URL without the
    password, the password); skips the test where the server binaries are not installed."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    run_as = []
    folder = Path(tempfile.mkdtemp(prefix="lstmvision-pg-"))  # under /tmp: reachable by the server's user
    if os.geteuid() == 0:
        user = next(u for u in ("postgres", "nobody") if has_user(u))
        run_as = ["runuser", "-u", user, "--"]
        os.chown(folder, pwd.getpwnam(user).pw_uid, -1)
    password, port = "throwaway-db-password", free_port()
    (folder / "pw").write_text(password)
    os.chmod(folder / "pw", 0o644)
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(folder / "data")]
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "mlflow", "-E", "UTF8",
                    "--auth=scram-sha-256", f"--pwfile={folder / 'pw'}"], check=True, capture_output=True)
    subprocess.run([*pg_ctl, "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "-l",
                    str(folder / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"],
                       env={**os.environ, "PGPASSWORD": password}, check=True, capture_output=True)
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow", password
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
