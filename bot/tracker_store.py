"""SQL tracker store configured from the RASA_TRACKER_* environment variables.

Rasa expands `${VAR}` in endpoints.yml but fails on unset variables and passes empty strings
through (an empty port cannot be cast to int), while SQLite needs no host, port or user. This
subclass reads the optional connection parameters itself and drops empty ones, so one
endpoints.yml serves both SQLite (`RASA_TRACKER_DB` = file path) and PostgreSQL.
"""

import os
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore

import bot.speedups  # noqa: F401 - patches Rasa on import (see the module)

_OPTIONAL = {
    "host": "RASA_TRACKER_HOST",
    "port": "RASA_TRACKER_PORT",
    "username": "RASA_TRACKER_USER",
    "password": "RASA_TRACKER_PASSWORD",
}


def _clean(value: Any) -> Any | None:
    """Empty strings mean "not set"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


class EnvSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose dialect/db come from endpoints.yml and the rest from the env."""

    def __init__(self, dialect: str = "", db: str = "", **kwargs: Any) -> None:
        dialect = _clean(dialect) or os.environ.get("RASA_TRACKER_DIALECT") or "sqlite"
        db = _clean(db) or os.environ.get("RASA_TRACKER_DB") or "rasa.db"
        # Rasa passes the endpoint's `url` as `host`; it is unused here.
        kwargs.pop("host", None)
        params = {key: _clean(kwargs.pop(key, None)) or _clean(os.environ.get(env)) for key, env in _OPTIONAL.items()}
        if dialect == "sqlite":
            params = {key: None for key in params}
            folder = os.path.dirname(os.path.abspath(db))
            os.makedirs(folder, exist_ok=True)
            # What citizens wrote (masked) is in it: readable by its owner only, like the service's database.
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(db, 0o600)
        super().__init__(dialect=dialect, db=db, **params, **kwargs)
