"""Managing municipalities: list them, add one, rename one and change its general settings (the
languages it offers, the dashboard's currency). Opening hours have their own route (handoff), the
knowledge settings theirs (knowledge); every change is merged into the one settings object."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine, insert, select, update

from core.db import run_db
from core.deps import DbEngine, MunicipalityScope, current_user, require_role
from core.errors import Forbidden
from core.municipalities import municipalities, update_settings
from core.municipalities import settings as settings_of

router = APIRouter(prefix="/api/v1/admin/municipalities", tags=["municipalities"])
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
LANGUAGE = re.compile(r"^[a-z]{2,3}$")


class GeneralSettings(BaseModel):
    """The settings this page owns; other keys in a municipality's settings are left as they are."""

    currency: str | None = Field(None, min_length=1, max_length=8, description="the dashboard's currency, e.g. SEK")
    languages: list[str] | None = Field(None, description="the languages the municipality offers: sv, en, ...")

    @field_validator("languages")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(LANGUAGE.match(x) for x in value):
            raise ValueError("use language codes like sv, en, ar")
        return value


class NewMunicipality(BaseModel):
    id: str = Field(..., pattern=ID_PATTERN, description="lower-case letters, digits and dashes")
    name: str = Field(..., min_length=1, max_length=200)
    settings: GeneralSettings = GeneralSettings()


class MunicipalityChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    settings: GeneralSettings | None = None


class Municipality(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    settings: dict[str, Any] | None = Field(None, description="its settings (widget look, languages, hours, ...)")


def _rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(municipalities).order_by(municipalities.c.id))]


def _create(engine: Engine, body: NewMunicipality) -> dict:
    with engine.begin() as conn:
        if conn.execute(select(municipalities.c.id).where(municipalities.c.id == body.id)).first():
            raise HTTPException(409, f"the municipality '{body.id}' exists already")
        settings = body.settings.model_dump(exclude_none=True)
        conn.execute(insert(municipalities).values(id=body.id, name=body.name, settings=settings))
    return {"id": body.id, "name": body.name, "settings": settings}


def _change(engine: Engine, municipality: str, body: MunicipalityChange) -> dict:
    if settings_of(engine, municipality) is None:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    if body.name:
        with engine.begin() as conn:
            conn.execute(update(municipalities).where(municipalities.c.id == municipality).values(name=body.name))
    if body.settings:
        update_settings(engine, municipality, body.settings.model_dump(exclude_none=True))
    return next(m for m in _rows(engine) if m["id"] == municipality)


@router.get("", response_model=list[Municipality])
async def municipality_list(engine: DbEngine, user: Annotated[dict, Depends(current_user)]) -> list[dict]:
    """The municipalities the caller works for (an admin: all), with their settings."""
    rows = await run_db(engine, _rows, engine)
    return MunicipalityScope.of(user).filter(rows, key="id")


@router.post("", status_code=201, response_model=Municipality)
async def municipality_create(
    engine: DbEngine, body: NewMunicipality, user: Annotated[dict, Depends(require_role("admin"))]
) -> dict:
    """A new municipality: only a global admin (one municipality's admin has no say over others)."""
    if MunicipalityScope.of(user).ids is not None:
        raise Forbidden("adding a municipality needs a global admin (\"*\" among the admin's municipalities)")
    return await run_db(engine, _create, engine, body)


@router.patch("/{municipality}", response_model=Municipality)
async def municipality_change(
    engine: DbEngine,
    municipality: str,
    body: MunicipalityChange,
    user: Annotated[dict, Depends(require_role("admin"))],
) -> dict:
    MunicipalityScope.of(user).check(municipality)
    return await run_db(engine, _change, engine, municipality, body)
