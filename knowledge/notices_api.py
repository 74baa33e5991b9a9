"""The widget's public route for disruption notices (the store is knowledge/notices.py)."""

from __future__ import annotations

from fastapi import APIRouter

from core.db import run_db
from core.deps import DbEngine
from knowledge.deps import Notices
from knowledge.models import PublicNotice

public_router = APIRouter(prefix="/api/v1", tags=["notices"])
PUBLIC_FIELDS = ("id", "area", "text", "language", "url", "valid_from", "valid_until")


@public_router.get("/notices", response_model=list[PublicNotice])
async def active_notices(
    notices: Notices, engine: DbEngine, municipality: str = "default", language: str | None = None
) -> list[dict]:
    """Valid disruption notices for the widget's banner (public; no staff details)."""
    found = await run_db(engine, notices.active, municipality, language)
    return [{k: n[k] for k in PUBLIC_FIELDS} for n in found]
