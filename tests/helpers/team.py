"""The team's tracking server under test (`lstmvision team server` on PostgreSQL with basic auth)."""

import os
import sys
from pathlib import Path


class Team:
    """The team's tracking server under test: `lstmvision team server` on PostgreSQL with basic auth, an
    admin and two users. ``env(user)`` is what that user exports to use it."""

    passwords = {"admin": "admin-team-password", "alice": "alice-password-1", "bob": "bob-password-12"}

    def __init__(self, db: str, db_password: str, folder: Path):
        self.db, self.folder, self.uri = db, folder, ""
        self.server_env = {**os.environ, "PGPASSWORD": db_password, "XDG_CACHE_HOME": str(folder),
                           "MLFLOW_AUTH_ADMIN_PASSWORD": self.passwords["admin"],
                           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-key"}

    def server_args(self, port: int) -> list[str]:
        return [sys.executable, "-m", "stages.cli", "team", "server", "--db", self.db, "--artifacts",
                str(self.folder / "artifacts"), "--port", str(port)]

    def env(self, user: str, password: str | None = None, uri: str | None = None) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": uri or self.uri, "MLFLOW_TRACKING_USERNAME": user,
                "MLFLOW_TRACKING_PASSWORD": password or self.passwords[user]}
