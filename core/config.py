"""Settings from the environment, resolved once: every process of one install reads the same names."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _data_dir() -> Path:
    return Path(os.environ.get("KOMMUNCHATT_DATA_DIR", "var")).resolve()


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_data_dir)
    database_url: str = ""
    redis_url: str | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    rasa_url: str = "http://127.0.0.1:5005"
    actions_url: str = "http://127.0.0.1:5055"
    internal_token: str = ""
    max_message_chars: int = 2000
    rasa_timeout_s: float = 10.0

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def internal_token(data_dir: Path) -> str:
    """The shared secret between the service and the action server, kept in the data dir."""
    token = os.environ.get("KOMMUNCHATT_INTERNAL_TOKEN")
    if token:
        return token
    path = data_dir / "internal-token"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def database_url(data_dir: Path, url: str | None = None) -> str:
    """The SQLAlchemy URL: SQLite in the data dir by default; postgresql:// URLs use psycopg 3."""
    db = url or f"sqlite:///{data_dir / 'kommunchatt.db'}"
    if db.startswith("postgres://"):
        db = "postgresql://" + db.removeprefix("postgres://")
    if db.startswith("postgresql://"):
        db = "postgresql+psycopg://" + db.removeprefix("postgresql://")
    return db


def load_settings() -> Settings:
    data_dir = _data_dir()
    return Settings(
        data_dir=data_dir,
        database_url=database_url(data_dir, os.environ.get("DATABASE_URL")),
        redis_url=os.environ.get("REDIS_URL") or None,
        port=int(os.environ.get("KOMMUNCHATT_PORT", "8000")),
        host=os.environ.get("KOMMUNCHATT_HOST", "127.0.0.1"),
        rasa_url=os.environ.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        actions_url=os.environ.get("ACTIONS_URL", "http://127.0.0.1:5055").rstrip("/"),
        internal_token=internal_token(data_dir),
    )
