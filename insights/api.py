"""The webmaster's insight routes: unanswered questions, stale entries, the dashboard and its cost settings.

Read-only over the conversations (the settings route writes the municipality's cost settings).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from core import municipalities
from core.deps import MunicipalityScope, check_municipality, require_role
from insights import reports
from insights import unanswered as findings
from insights.models import AgentsReport, CostSettings, Dashboard, Freshness, ReportSummary, Unanswered
from knowledge.admin_api import required_languages
from knowledge.kbfile import LANG_RE

router = APIRouter(prefix="/api/v1", tags=["insights"])
webmaster = require_role("webmaster")
admin = require_role("admin")


@router.get("/admin/freshness", response_model=Freshness)
async def freshness(request: Request, municipality: str = "default", soon_days: int = 30, user=Depends(webmaster)):
    c = request.app.state.c
    check_municipality(user, municipality)
    return {"items": findings.freshness(c.knowledge, c.engine, municipality, soon_days=soon_days)}


@router.get("/admin/unanswered", response_model=Unanswered)
async def unanswered(request: Request, municipality: str = "default", days: int = 30, user=Depends(webmaster)):
    c = request.app.state.c
    check_municipality(user, municipality)
    groups = findings.unanswered(c.knowledge, c.engine, municipality, days=min(max(days, 1), 366))
    return {"groups": groups, "days": days}


@router.get("/admin/dashboard", response_model=Dashboard)
async def dashboard(request: Request, municipality: str = "default", days: int = 30, user=Depends(webmaster)):
    c = request.app.state.c
    check_municipality(user, municipality)
    return findings.dashboard(c.knowledge, c.engine, municipality, days=min(max(days, 1), 366))


class Costs(BaseModel):
    cost_per_call: float = Field(..., ge=0, le=100_000)
    cost_per_chat: float = Field(..., ge=0, le=100_000)
    currency: str = Field("SEK", min_length=1, max_length=8)
    required_languages: list[str] | None = None


@router.get("/admin/settings", response_model=CostSettings)
async def get_settings(request: Request, municipality: str = "default", user=Depends(webmaster)) -> dict:
    check_municipality(user, municipality)
    settings = municipalities.settings(request.app.state.c.engine, municipality) or {}
    return {
        **{k: settings.get(k, v) for k, v in findings.DEFAULT_COSTS.items()},
        "required_languages": required_languages(settings),
    }


@router.put("/admin/settings", response_model=CostSettings)
async def put_settings(request: Request, body: Costs, municipality: str = "default", user=Depends(webmaster)):
    """Cost per call and per chat (the dashboard's saving), and the languages every entry should have."""
    c = request.app.state.c
    check_municipality(user, municipality)
    if body.required_languages and not all(LANG_RE.match(x) for x in body.required_languages):
        raise HTTPException(422, [{"field": "required_languages", "message": "use language codes like sv, en"}])
    if municipalities.update_settings(c.engine, municipality, body.model_dump(exclude_none=True)) is None:
        raise HTTPException(404, f"no municipality with id '{municipality}'")
    return await get_settings(request, municipality, user)


@router.get("/reports/summary", tags=["reports"], response_model=ReportSummary, response_model_by_alias=True)
async def report_summary(
    request: Request,
    date_from: str | None = None,
    date_to: str | None = None,
    group_by: str = "day",
    municipality: str | None = None,
    tz: str = "Europe/Stockholm",
    user=Depends(admin),
) -> dict:
    """Waiting, first response and handling times, outcomes and satisfaction per day, language or
    municipality. Dates are YYYY-MM-DD (default: the last 7 days). An admin of some municipalities names
    one of them (with only one, it is the default); a global admin may leave it out for all."""
    scope = MunicipalityScope.of(user)
    if municipality is None and scope.ids is not None:
        if len(scope.ids) != 1:
            raise HTTPException(422, "name the municipality (you work for several)")
        municipality = next(iter(scope.ids))
    if municipality is not None:
        scope.check(municipality)
    try:
        return await asyncio.to_thread(
            reports.summary, request.app.state.c.engine, date_from, date_to, group_by, tz, municipality
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/reports/agents", tags=["reports"], response_model=AgentsReport, response_model_by_alias=True)
async def report_agents(
    request: Request,
    date_from: str | None = None,
    date_to: str | None = None,
    tz: str = "Europe/Stockholm",
    user=Depends(admin),
) -> dict:
    """Per agent: chats, handling and first response times, most and mean concurrent chats, satisfaction
    (over the chats of the admin's municipalities)."""
    try:
        return await asyncio.to_thread(reports.agents, request.app.state.c.engine, date_from, date_to, tz,
                                       MunicipalityScope.of(user).ids)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
