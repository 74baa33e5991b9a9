"""REST for owners and freshness: departments, ownership, the work list and its statuses, the weekly digest
(JSON, CSV, mail), the SMTP settings and the link check.

Who: the contact centre (agents) reads the list, its statuses and the digest; webmasters (and admins) change
departments, owners and statuses and run the link check; admins set the SMTP server. Every route acts on
one municipality (query `municipality`, default "default"), checked against the caller's scope; an unknown
municipality, department, entry, topic or item is a 404.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from core import municipalities as municipality_settings
from core.db import run_db
from core.deps import CurrentUser, DbEngine, municipality_of
from core.errors import ERROR_RESPONSES, Conflicting, NotFound
from knowledge.admin_api import attachment
from learning import digest, links, owners, signals, worklist

Kind = Literal["negative_feedback", "low_rating", "unanswered", "overdue_review", "review_due", "broken_link"]
Status = Literal["new", "in_progress", "done", "wont_do"]
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
log = logging.getLogger(__name__)
# Ids as the databases store them (a larger number would overflow SQLite's integer: a 500, not a 404).
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
PathId = Annotated[int, Path(ge=1, le=2**31 - 1)]
HOST = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"


def _existing(role_check):
    """The request's municipality for a caller with the roles of `role_check`, and it must exist (a global
    admin passes the scope check with any id)."""

    def check(engine: DbEngine, municipality: str = Depends(role_check)) -> str:
        if not municipality.isprintable() or municipality_settings.settings(engine, municipality) is None:
            raise NotFound(f"no municipality with id {municipality!r}")
        return municipality

    return check


Reader = Annotated[str, Depends(_existing(municipality_of("agent", "webmaster")))]
Editor = Annotated[str, Depends(_existing(municipality_of("webmaster")))]
AdminOf = Annotated[str, Depends(_existing(municipality_of("admin")))]

admin = APIRouter(prefix="/api/v1/admin", tags=["owners"], responses=ERROR_RESPONSES)
router = APIRouter(prefix="/api/v1/worklist", tags=["worklist"], responses=ERROR_RESPONSES)


class Contact(BaseModel):
    name: str = Field("", max_length=200)
    email: str | None = Field(None, pattern=EMAIL, max_length=254)


class NewDepartment(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)
    contacts: list[Contact] = Field(default_factory=list, max_length=50)


class DepartmentChange(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    contacts: list[Contact] | None = Field(None, max_length=50)


class Department(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    municipality: str
    name: str
    contacts: list[dict[str, Any]]
    is_default: bool
    created_at: float
    updated_at: float


class Removed(BaseModel):
    moved_items: int = Field(description="work items moved to the default department")


class OwnerChoice(BaseModel):
    department_id: Id


class OwnerSet(BaseModel):
    kind: Literal["entry", "topic", "default"]
    key: str
    department_id: int
    set_by: str | None
    moved_items: int = Field(description="new items that went to their new owner")


class Ownership(BaseModel):
    model_config = ConfigDict(extra="allow")

    default_department_id: int
    topics: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    topics_without_owner: list[str]


class EntryOwner(BaseModel):
    entry_id: str
    department: Department
    via: Literal["entry", "topic", "default"]
    key: str


class WorkItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    municipality: str
    department_id: int
    department: str
    routed_via: Literal["entry", "topic", "default", "manual"]
    kind: Kind
    entry_id: str | None
    conversation_id: str | None
    text: str = Field(description="personal data masked")
    detail: dict[str, Any]
    status: Status
    occurred_at: float
    created_at: float
    updated_at: float
    changed_by: str | None


class StatusChange(BaseModel):
    """One change a person made to an item: statuses, department ids, a staff username and a time only."""

    previous_status: Status
    status: Status
    previous_department_id: int | None = Field(description="set when the item was handed to another department")
    department_id: int | None
    department: str | None = Field(description="the department it was handed to, if it still exists")
    changed_by: str
    changed_at: float


class WorkItemWithHistory(WorkItem):
    history: list[StatusChange] = Field(description="every change of status or department, oldest first")


class ListedWorkItem(WorkItem):
    history: list[StatusChange] | None = Field(None, description="with ?history=true: as on one item")


class ItemChange(BaseModel):
    status: Status | None = None
    department_id: Id | None = Field(None, description="hand the item to another department")


class Digest(BaseModel):
    model_config = ConfigDict(extra="allow")

    municipality: str
    week: str
    total: int
    departments: list[dict[str, Any]]


class SmtpSettings(BaseModel):
    host: str = Field(..., pattern=HOST, description="the server's name or address")
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(..., pattern=EMAIL, max_length=254)
    starttls: bool = False
    username: str | None = Field(None, max_length=200)


class SmtpState(BaseModel):
    configured: bool
    settings: SmtpSettings | None
    password_in_environment: bool


class MailSent(BaseModel):
    model_config = ConfigDict(extra="allow")

    week: str
    sent: list[dict[str, Any]]


class ReviewSettings(BaseModel):
    """How early owners hear of a coming review date (learning/signals.py)."""

    notice_days: int = Field(
        signals.REVIEW_NOTICE_DAYS,
        ge=0,
        le=signals.MAX_NOTICE_DAYS,
        description="days before an entry's review date that a 'review due' item goes to its owner; 0: none",
    )


class ReviewsRouted(ReviewSettings):
    added_items: int = Field(description="review items that went to their owners now")


class LinkCheckSettings(BaseModel):
    """The link check of one municipality as stored (learning/links.py CheckSettings)."""

    enabled: bool = True
    hosts: list[str] = Field(
        default_factory=list, description="the sites checked; empty: the hosts of the entries' urls"
    )
    every_hours: float = 24.0
    concurrency: int = 4
    per_host_delay_s: float = 1.0
    timeout_s: float = 10.0


class LinkCheckChange(LinkCheckSettings):
    """What a webmaster may set: bounded, so the municipality's own site is never hammered."""

    hosts: list[Annotated[str, Field(pattern=HOST)]] = Field(default_factory=list, max_length=50)
    every_hours: float = Field(24.0, ge=1, le=24 * 31)
    concurrency: int = Field(4, ge=1, le=16)
    per_host_delay_s: float = Field(1.0, ge=0.2, le=60)
    timeout_s: float = Field(10.0, ge=1, le=60)


class LinkStatus(BaseModel):
    url: str
    status: int | None
    error: str | None
    failures: int
    checked_at: float
    ok_at: float | None


class LinkReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    municipality: str
    checked: int | None = None
    broken: list[str] = []
    flagged: int | None = None
    skipped: list[str] = []
    started: bool = False


# ------------------------------------------------------------------ departments


@admin.get("/departments", response_model=list[Department])
async def department_list(municipality: Reader, engine: DbEngine) -> list[dict]:
    """The municipality's departments; the default one (the contact centre) is made on first need."""
    return await run_db(engine, owners.list_departments, engine, municipality)


@admin.post("/departments", response_model=Department, status_code=201)
async def department_create(body: NewDepartment, municipality: Editor, engine: DbEngine) -> dict:
    contacts = [c.model_dump() for c in body.contacts]
    return await run_db(engine, owners.create_department, engine, municipality, body.name, contacts)


def _one_department(engine: Engine, municipality: str, department_id: int) -> dict:
    with engine.connect() as conn:
        return owners.get_department(conn, municipality, department_id)


@admin.get("/departments/{department_id}", response_model=Department)
async def department_get(department_id: PathId, municipality: Reader, engine: DbEngine) -> dict:
    return await run_db(engine, _one_department, engine, municipality, department_id)


@admin.patch("/departments/{department_id}", response_model=Department)
async def department_change(
    department_id: PathId, body: DepartmentChange, municipality: Editor, engine: DbEngine
) -> dict:
    contacts = None if body.contacts is None else [c.model_dump() for c in body.contacts]
    return await run_db(engine, owners.update_department, engine, municipality, department_id, body.name, contacts)


@admin.delete("/departments/{department_id}", response_model=Removed)
async def department_delete(department_id: PathId, municipality: Editor, engine: DbEngine) -> dict:
    """Remove a department: its ownerships fall back, its work items go to the default department."""
    moved = await run_db(engine, owners.delete_department, engine, municipality, department_id)
    await run_db(engine, worklist.reroute, engine, municipality)  # the default, or a topic's owner now
    return {"moved_items": moved}


# ------------------------------------------------------------------ ownership


@admin.get("/owners", response_model=Ownership)
async def ownership(municipality: Reader, engine: DbEngine) -> dict:
    return await run_db(engine, owners.ownership, engine, municipality)


@admin.get("/owners/entries/{entry_id}", response_model=EntryOwner)
async def entry_owner(entry_id: str, municipality: Reader, engine: DbEngine) -> dict:
    """Who owns an entry and why: its own owner, its topic's, or the default department."""
    return await run_db(engine, owners.owner_of_entry, engine, municipality, entry_id)


async def _set(engine: Engine, municipality: str, kind: str, key: str, body: OwnerChoice, user: dict) -> dict:
    done = await run_db(engine, owners.set_owner, engine, municipality, kind, key, body.department_id, user["username"])
    return {**done, "moved_items": await run_db(engine, worklist.reroute, engine, municipality)}


@admin.put("/owners/entries/{entry_id}", response_model=OwnerSet)
async def entry_owner_set(
    entry_id: str, body: OwnerChoice, municipality: Editor, engine: DbEngine, user: CurrentUser
) -> dict:
    return await _set(engine, municipality, "entry", entry_id, body, user)


@admin.put("/owners/topics/{topic}", response_model=OwnerSet)
async def topic_owner_set(
    topic: str, body: OwnerChoice, municipality: Editor, engine: DbEngine, user: CurrentUser
) -> dict:
    return await _set(engine, municipality, "topic", topic, body, user)


@admin.put("/owners/default", response_model=OwnerSet)
async def default_owner_set(body: OwnerChoice, municipality: Editor, engine: DbEngine, user: CurrentUser) -> dict:
    """The department that owns everything nobody else owns (the contact centre unless changed)."""
    return await _set(engine, municipality, "default", "", body, user)


@admin.delete("/owners/entries/{entry_id}", status_code=204)
async def entry_owner_clear(entry_id: str, municipality: Editor, engine: DbEngine) -> Response:
    await run_db(engine, owners.clear_owner, engine, municipality, "entry", entry_id)
    await run_db(engine, worklist.reroute, engine, municipality)
    return Response(status_code=204)


@admin.delete("/owners/topics/{topic}", status_code=204)
async def topic_owner_clear(topic: str, municipality: Editor, engine: DbEngine) -> Response:
    await run_db(engine, owners.clear_owner, engine, municipality, "topic", topic)
    await run_db(engine, worklist.reroute, engine, municipality)
    return Response(status_code=204)


# ------------------------------------------------------------------ the work list


@router.get("", response_model=list[ListedWorkItem], response_model_exclude_unset=True)
async def item_list(
    municipality: Reader,
    engine: DbEngine,
    department_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status: Status | None = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
    history: Annotated[bool, Query(description="each item with its changes (who, when)")] = False,
) -> list[dict]:
    """The owners' list, newest first; agents see the statuses (what happened to a citizen's feedback)."""
    found = await run_db(
        engine, worklist.items, engine, municipality, department_id, status, kind, limit=limit, offset=offset
    )
    return await run_db(engine, worklist.with_history, engine, municipality, found) if history else found


@router.get("/digest", response_model=Digest)
async def digest_report(
    municipality: Reader, engine: DbEngine, week: Annotated[str | None, Query(description="2026-W49")] = None
) -> dict:
    """Per department, the week's items by kind and status (default: this week)."""
    return await run_db(engine, digest.digest, engine, municipality, week)


@router.get("/digest.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def digest_export(
    municipality: Reader, engine: DbEngine, week: Annotated[str | None, Query(description="2026-W49")] = None
) -> Response:
    report = await run_db(engine, digest.digest, engine, municipality, week)
    name = f"arbetslista-{municipality}-{report['week']}.csv"
    return Response(
        digest.digest_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": attachment(name)},
    )


@router.get("/{item_id}", response_model=WorkItemWithHistory)
async def item_get(item_id: PathId, municipality: Reader, engine: DbEngine) -> dict:
    """One item with its history: each change of status or department, who made it and when."""
    item = await run_db(engine, worklist.get, engine, municipality, item_id)
    return (await run_db(engine, worklist.with_history, engine, municipality, [item]))[0]


@router.patch("/{item_id}", response_model=WorkItemWithHistory)
async def item_change(
    item_id: PathId, body: ItemChange, municipality: Editor, engine: DbEngine, user: CurrentUser
) -> dict:
    """Set the status (new, in_progress, done, wont_do) or hand the item to another department; the change
    joins the item's history."""
    item = await run_db(
        engine, worklist.change, engine, municipality, item_id, user["username"], body.status, body.department_id
    )
    return (await run_db(engine, worklist.with_history, engine, municipality, [item]))[0]


# ------------------------------------------------------------------ mail and links


@admin.post("/digest/send", response_model=MailSent)
async def digest_send(
    municipality: Editor, engine: DbEngine, week: Annotated[str | None, Query(description="2026-W49")] = None
) -> dict:
    """Mail the week's digest to each department's contacts now (the service does it every Monday)."""
    return await asyncio.to_thread(digest.send, engine, municipality, week)


@admin.get("/digest/smtp", response_model=SmtpState)
async def smtp_get(municipality: AdminOf, engine: DbEngine) -> dict:
    """The mail server the digest goes through, and whether a password for it is in the environment."""
    settings = await run_db(engine, municipality_settings.settings, engine, municipality)
    smtp = (settings or {}).get("smtp")
    configured = await run_db(engine, digest.smtp_settings, engine, municipality)
    return {
        "configured": configured is not None,
        "settings": smtp,
        "password_in_environment": bool(configured and configured.get("password")),
    }


@admin.put("/digest/smtp", response_model=SmtpSettings)
async def smtp_set(body: SmtpSettings, municipality: AdminOf, engine: DbEngine) -> dict:
    """The municipality's mail server for the digest; the password comes from the environment
    (KOMMUNCHATT_SMTP_PASSWORD_<MUNICIPALITY>), never from here."""
    smtp = body.model_dump()
    await run_db(engine, municipality_settings.update_settings, engine, municipality, {"smtp": smtp})
    return smtp


@admin.get("/reviews/settings", response_model=ReviewSettings)
async def review_settings(municipality: Reader, engine: DbEngine) -> dict:
    settings = await run_db(engine, municipality_settings.settings, engine, municipality)
    return {"notice_days": signals.review_notice_days(settings)}


@admin.put("/reviews/settings", response_model=ReviewsRouted)
async def review_settings_set(body: ReviewSettings, municipality: Editor, engine: DbEngine) -> dict:
    """The notice period; entries that now fall inside it go to their owners at once, not at the next pass."""
    await run_db(engine, municipality_settings.update_settings, engine, municipality, {"reviews": body.model_dump()})
    found = await run_db(engine, signals.review_signals, engine, municipality)
    added = await run_db(engine, worklist.add, engine, found) if found else 0
    return {**body.model_dump(), "added_items": added}


@admin.get("/links/settings", response_model=LinkCheckSettings)
async def link_settings(municipality: Editor, engine: DbEngine) -> dict:
    settings = await run_db(engine, municipality_settings.settings, engine, municipality)
    config = links.CheckSettings.of(settings)
    return {**config.__dict__, "hosts": list(config.hosts)}


@admin.put("/links/settings", response_model=LinkCheckSettings)
async def link_settings_set(body: LinkCheckChange, municipality: Editor, engine: DbEngine) -> dict:
    """Which sites are checked, how often and how gently (a delay of at least 0.2 s per host)."""
    config = body.model_dump()
    config["hosts"] = [h.lower() for h in config["hosts"]]
    await run_db(engine, municipality_settings.update_settings, engine, municipality, {"link_check": config})
    return config


@admin.get("/links", response_model=list[LinkStatus])
async def link_statuses(municipality: Editor, engine: DbEngine) -> list[dict]:
    return await run_db(engine, links.statuses, engine, municipality)


_running: set[asyncio.Task] = set()


async def _check_in_background(engine: Engine, municipality: str) -> None:
    try:
        await links.check_municipality(engine, municipality)
    except Exception:  # noqa: BLE001 - nobody awaits this task: say what went wrong in the log
        log.exception("link check of %s failed", municipality)


@admin.post("/links/check", response_model=LinkReport)
async def link_check_now(municipality: Editor, engine: DbEngine, wait: bool = False) -> dict:
    """Check the municipality's own links now; `wait=false` starts the check and answers at once."""
    if links.checking(municipality):
        raise Conflicting(f"the links of '{municipality}' are being checked already")
    if wait:
        return await links.check_municipality(engine, municipality)
    task = asyncio.create_task(_check_in_background(engine, municipality))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return {"municipality": municipality, "started": True, "at": dt.datetime.now(dt.UTC).isoformat()}
