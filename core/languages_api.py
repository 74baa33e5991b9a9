"""`GET /api/v1/languages`: the one language table (core/languages.py) for the widget and the staff pages."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core.errors import ERROR_RESPONSES
from core.languages import public

router = APIRouter(prefix="/api/v1", tags=["languages"], responses=ERROR_RESPONSES)


class LanguageOut(BaseModel):
    code: str
    name: str
    direction: str
    swedish: str
    locale: str | None = None
    rtl: bool


class Languages(BaseModel):
    languages: list[LanguageOut]


@router.get("/languages", response_model=Languages)
async def languages() -> JSONResponse:
    """Every language citizens can chat in, with its own name and writing direction (public, cacheable)."""
    return JSONResponse({"languages": public()}, headers={"cache-control": "public, max-age=300"})
