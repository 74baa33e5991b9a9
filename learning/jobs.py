"""The learning layer's background work in each service process (kommunchatt/app.py starts it):

- routing every ROUTE_EVERY_S seconds (learning/worklist.py): feedback is on a list within a minute;
- every CHORES_EVERY_S seconds, per municipality: the link check when its period has passed and the
  weekly digest mail when it is due. Both are claimed (learning/claims.py), so of several processes
  exactly one checks the site or sends the mail.

Database work runs on a thread: a first pass over two weeks of messages must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from sqlalchemy import Engine, select

from core import municipalities as municipality_settings
from core.db import is_locked
from core.municipalities import municipalities
from learning import digest, links
from learning.claims import claim, finish, release
from learning.worklist import ROUTE_EVERY_S, Router

log = logging.getLogger(__name__)
CHORES_EVERY_S = 300.0


async def route_periodically(engine: Engine, every: float = ROUTE_EVERY_S) -> None:
    router = Router(engine)
    while True:
        try:
            added = await asyncio.to_thread(router.run_once)
            if added:
                log.info("routing: %d new work items", added)
        except Exception as exc:  # noqa: BLE001 - a locked database or a hiccup: the next pass tries again
            if is_locked(exc):  # another writer held the database the whole wait: no error, next pass
                log.warning("routing pass deferred: the database is locked")
            else:
                log.exception("routing pass failed")
        await asyncio.sleep(every)


def _municipalities(engine: Engine) -> list[tuple[str, dict]]:
    with engine.connect() as conn:
        return [(r.id, dict(r.settings or {})) for r in conn.execute(select(municipalities))]


def _claim(engine: Engine, name: str, every_s: float | None) -> bool:
    with engine.begin() as conn:
        return claim(conn, name, every_s)


def _finish(engine: Engine, name: str, result: dict | None, failed: bool) -> None:
    with engine.begin() as conn:
        (release if failed else finish)(conn, name, *(() if failed else (result,)))


async def link_check_if_due(engine: Engine, municipality: str, settings: dict) -> dict | None:
    config = links.CheckSettings.of(settings)
    name = f"links:{municipality}"
    if not config.enabled or not await asyncio.to_thread(_claim, engine, name, config.every_hours * 3600):
        return None
    try:
        report = await links.check_municipality(engine, municipality)
    except Exception:
        await asyncio.to_thread(_finish, engine, name, None, True)
        raise
    await asyncio.to_thread(_finish, engine, name, {k: report[k] for k in ("checked", "flagged")}, False)
    return report


async def digest_if_due(engine: Engine, municipality: str, settings: dict, now: dt.datetime | None = None):
    """Monday morning: last week's digest to each department, once (the claim names the week)."""
    if not settings.get("smtp"):
        return None
    week = digest.previous_week(now or dt.datetime.now(municipality_settings.timezone(settings)))
    name = f"digest:{municipality}:{week}"
    if week is None or not await asyncio.to_thread(_claim, engine, name, None):
        return None
    try:
        result = await asyncio.to_thread(digest.send, engine, municipality, week)
    except Exception:
        await asyncio.to_thread(_finish, engine, name, None, True)  # the next round tries again
        raise
    await asyncio.to_thread(_finish, engine, name, {"sent": len(result["sent"])}, False)
    return result


async def chores_periodically(engine: Engine, every: float = CHORES_EVERY_S) -> None:
    """The first round after `every` seconds: a process that starts and stops at once (a test, a failed
    rollout) never knocks on a municipality's site."""
    while True:
        await asyncio.sleep(every)
        try:
            for municipality, settings in await asyncio.to_thread(_municipalities, engine):
                for job in (link_check_if_due, digest_if_due):
                    try:
                        await job(engine, municipality, settings)
                    except Exception:  # noqa: BLE001 - one municipality's failure must not stop the others
                        log.exception("%s failed for %s", job.__name__, municipality)
        except Exception:  # noqa: BLE001
            log.exception("learning chores failed")


def start(engine: Engine) -> list[asyncio.Task]:
    """The tasks the app's lifespan starts and cancels."""
    return [
        asyncio.create_task(route_periodically(engine), name="learning-routing"),
        asyncio.create_task(chores_periodically(engine), name="learning-chores"),
    ]
