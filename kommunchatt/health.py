"""Health of the service for people, the runner, load balancers and Kubernetes probes.

- `/health`: every part (model, database, Rasa, action server) by name, 200 only when all are up,
  so whoever looks sees which part is down.
- `/health/live`: this process answers (a liveness probe restarts it otherwise).
- `/health/ready`: this process can serve citizens: its database answers and its knowledge index is
  loaded. Rasa or the action server being down does NOT make it unready: citizens then get an
  apology and a direct way to a person (conversations/service.py), which only this process can give.
"""

from __future__ import annotations

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from conversations.deps import Chat
from core.db import run_db
from core.deps import AppSettings, DbEngine
from knowledge.deps import Knowledge

router = APIRouter(prefix="/health", tags=["health"])


class Health(BaseModel):
    """`status` ("ok", "degraded" or "alive") and each part checked by name, true when it is up."""

    model_config = ConfigDict(extra="allow")

    status: str


DEGRADED = {503: {"model": Health, "description": "a part is down (the body names it)"}}


def _select_one(engine) -> bool:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True


async def _own_checks(engine, knowledge) -> dict[str, bool]:
    checks = {"model": knowledge.embedder is not None}
    try:
        checks["database"] = await run_db(engine, _select_one, engine)
    except Exception:  # noqa: BLE001 - any failure means the database is down
        checks["database"] = False
    return checks


def _answer(checks: dict[str, bool]) -> JSONResponse:
    ok = all(checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


@router.get("", response_model=Health, responses=DEGRADED)
async def health(engine: DbEngine, knowledge: Knowledge, chat: Chat, settings: AppSettings) -> JSONResponse:
    """Each part's state by name; 200 only when all are up."""
    checks = await _own_checks(engine, knowledge)
    checks["rasa"] = await chat.rasa.healthy()
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            checks["actions"] = (await client.get(f"{settings.actions_url}/health")).status_code == 200
    except httpx.HTTPError:
        checks["actions"] = False
    return _answer(checks)


@router.get("/live", response_model=Health)
async def live() -> dict:
    """This process answers."""
    return {"status": "alive"}


@router.get("/ready", response_model=Health, responses=DEGRADED)
async def ready(engine: DbEngine, knowledge: Knowledge) -> JSONResponse:
    """This process can serve citizens (database and knowledge index); Rasa is not required."""
    return _answer(await _own_checks(engine, knowledge))
