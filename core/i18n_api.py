"""The interface texts of the staff pages, from the one string table (core/service_texts.yml)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.i18n import texts

router = APIRouter(prefix="/api/v1/i18n", tags=["i18n"])
STAFF_LANGUAGES = ("sv", "en")  # the staff pages are written in these; citizens have the widget's own list


class StaffTexts(BaseModel):
    language: str
    strings: dict[str, str] = Field(description="the staff pages' texts by key")


PREFIX = r"^(staff|workshop)_[a-z_]*$"  # the staff pages and console (staff_), the webmaster workshop (workshop_)


@router.get("/{language}", response_model=StaffTexts)
async def staff_texts(language: str, prefix: str = Query("staff_", pattern=PREFIX)) -> JSONResponse:
    """The staff pages' texts in Swedish or English (`prefix` narrows them to one page's keys; `workshop_` is the
    webmaster workshop's)."""
    if language not in STAFF_LANGUAGES:
        raise HTTPException(404, f"the staff pages are in {' and '.join(STAFF_LANGUAGES)}, not '{language}'")
    return JSONResponse(
        {"language": language, "strings": texts(language, prefix)}, headers={"cache-control": "no-cache"}
    )
