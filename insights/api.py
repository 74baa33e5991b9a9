"""The webmaster's insight routes: unanswered questions, stale entries, the dashboard and its cost settings.

Read-only over the conversations (the settings route writes the municipality's cost settings).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, Field

from core import municipalities
from core.db import run_db
from core.deps import Admin, DbEngine, Scope, WebmasterMunicipality
from core.errors import Invalid, NotFound
from insights import reports
from insights import unanswered as findings
from insights.models import AgentsReport, CostSettings, Dashboard, Freshness, ReportSummary, Unanswered
from knowledge.admin_api import required_languages
from knowledge.deps import Knowledge
from knowledge.kbfile import LANG_RE

router = APIRouter(prefix="/api/v1", tags=["insights"])


@router.get("/admin/freshness", response_model=Freshness)
async def freshness(municipality: WebmasterMunicipality, engine: DbEngine, knowledge: Knowledge,
                    soon_days: int = 30) -> dict:
    items = await run_db(engine, findings.freshness, knowledge, engine, municipality, soon_days=soon_days)
    return {"items": items}


@router.get("/admin/unanswered", response_model=Unanswered)
async def unanswered(municipality: WebmasterMunicipality, engine: DbEngine, knowledge: Knowledge,
                     days: int = 30) -> dict:
    groups = await run_db(engine, findings.unanswered, knowledge, engine, municipality, days=min(max(days, 1), 366))
    return {"groups": groups, "days": days}


@router.get("/admin/dashboard", response_model=Dashboard)
async def dashboard(municipality: WebmasterMunicipality, engine: DbEngine, knowledge: Knowledge,
                    days: int = 30) -> dict:
    return await run_db(engine, findings.dashboard, knowledge, engine, municipality, days=min(max(days, 1), 366))


class Costs(BaseModel):
    cost_per_call: float = Field(..., ge=0, le=100_000)
    cost_per_chat: float = Field(..., ge=0, le=100_000)
    currency: str = Field("SEK", min_length=1, max_length=8)
    required_languages: list[str] | None = None


def _cost_settings(engine, municipality: str) -> dict:
    settings = municipalities.settings(engine, municipality) or {}
    return {
        **{k: settings.get(k, v) for k, v in findings.DEFAULT_COSTS.items()},
        "required_languages": required_languages(settings),
    }


@router.get("/admin/settings", response_model=CostSettings)
async def get_settings(municipality: WebmasterMunicipality, engine: DbEngine) -> dict:
    return await run_db(engine, _cost_settings, engine, municipality)


@router.put("/admin/settings", response_model=CostSettings)
async def put_settings(body: Costs, municipality: WebmasterMunicipality, engine: DbEngine) -> dict:
    """Cost per call and per chat (the dashboard's saving), and the languages every entry should have."""
    if body.required_languages and not all(LANG_RE.match(x) for x in body.required_languages):
        raise Invalid("use language codes like sv, en",
                      [{"field": "required_languages", "message": "use language codes like sv, en"}])
    changes = body.model_dump(exclude_none=True)
    if await run_db(engine, municipalities.update_settings, engine, municipality, changes) is None:
        raise NotFound(f"no municipality with id '{municipality}'")
    return await run_db(engine, _cost_settings, engine, municipality)


@router.get("/reports/summary", tags=["reports"], response_model=ReportSummary, response_model_by_alias=True)
async def report_summary(
    engine: DbEngine,
    scope: Scope,
    _user: Admin,
    date_from: str | None = None,
    date_to: str | None = None,
    group_by: str = "day",
    municipality: str | None = None,
    tz: str | None = None,
) -> dict:
    """Waiting, first response and handling times, outcomes and satisfaction per day, language or
    municipality. Dates are YYYY-MM-DD days in `tz` (default: the municipality's time zone; the default
    period: the last 7 days up to its today). An admin of some municipalities names one of them (with only
    one, it is the default); a global admin may leave it out for all."""
    if municipality is None and scope.ids is not None:
        if len(scope.ids) != 1:
            raise Invalid("name the municipality (you work for several)",
                          [{"field": "municipality", "message": "required"}])
        municipality = next(iter(scope.ids))
    if municipality is not None:
        scope.check(municipality)
    try:
        zone = tz or await run_db(engine, reports.zone_name, engine, municipality)
        return await asyncio.to_thread(reports.summary, engine, date_from, date_to, group_by, zone, municipality)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


@router.get("/reports/agents", tags=["reports"], response_model=AgentsReport, response_model_by_alias=True)
async def report_agents(
    engine: DbEngine,
    scope: Scope,
    _user: Admin,
    date_from: str | None = None,
    date_to: str | None = None,
    tz: str | None = None,
) -> dict:
    """Per agent: chats, handling and first response times, most and mean concurrent chats, satisfaction
    (over the chats of the admin's municipalities). Days as in the summary: by default in the time zone of
    the admin's one municipality (of the default municipality for an admin of several)."""
    only = next(iter(scope.ids)) if scope.ids is not None and len(scope.ids) == 1 else None
    try:
        zone = tz or await run_db(engine, reports.zone_name, engine, only)
        return await asyncio.to_thread(reports.agents, engine, date_from, date_to, zone, scope.ids)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
