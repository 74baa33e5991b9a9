"""Municipalities and their settings (opening hours, costs, required languages, time zone): one table, one reader."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Column, Engine, String, Table, select, update

from core.db import metadata

DEFAULT_TIMEZONE = "Europe/Stockholm"

municipalities = Table(
    "municipalities",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("settings", JSON, nullable=False, default=dict),
)


def settings(engine: Engine, municipality: str) -> dict | None:
    """The municipality's settings, or None if there is no such municipality."""
    with engine.connect() as conn:
        row = conn.execute(select(municipalities.c.settings).where(municipalities.c.id == municipality)).first()
    return dict(row.settings or {}) if row else None


def update_settings(engine: Engine, municipality: str, changes: dict) -> dict | None:
    """Merge `changes` into the settings in one transaction; None if there is no such municipality."""
    with engine.begin() as conn:
        row = conn.execute(select(municipalities.c.settings).where(municipalities.c.id == municipality)).first()
        if not row:
            return None
        merged = {**(row.settings or {}), **changes}
        conn.execute(update(municipalities).where(municipalities.c.id == municipality).values(settings=merged))
    return merged


def timezone(settings: dict | None) -> ZoneInfo:
    """The municipality's time zone: its opening hours' zone, else its own setting, else Stockholm."""
    settings = settings or {}
    return ZoneInfo(
        (settings.get("opening_hours") or {}).get("timezone") or settings.get("timezone") or DEFAULT_TIMEZONE
    )


def all_settings(engine: Engine) -> list[tuple[str, dict]]:
    """Every municipality's id and settings (retention walks them all)."""
    with engine.connect() as conn:
        rows = conn.execute(select(municipalities.c.id, municipalities.c.settings)).all()
    return [(r.id, dict(r.settings or {})) for r in rows]


def ensure(engine: Engine, municipality: str, name: str | None = None) -> None:
    """The municipality exists afterwards, with no settings if it is new (idempotent)."""
    with engine.begin() as conn:
        if not conn.execute(select(municipalities.c.id).where(municipalities.c.id == municipality)).first():
            conn.execute(municipalities.insert().values(id=municipality, name=name or municipality, settings={}))


def ensure_default(engine: Engine) -> None:
    """The municipality every install starts with (idempotent)."""
    ensure(engine, "default", "Default")
