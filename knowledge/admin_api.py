"""The webmaster's workshop API: entries, import/export, audit, gaps, freshness, notices, dashboard.

Everything here needs the webmaster role (admins pass too) and is scoped to a municipality the user
belongs to. Entry edits go through `KnowledgeService`, so they are audited and answerable at once.
`widget_router` holds the two small public routes the citizen widget needs besides the chat API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from core import municipalities
from core.db import run_db
from core.deps import DbEngine, WebmasterMunicipality, component, require_role
from core.errors import Invalid, summary
from core.languages import NAMES, RTL
from core.languages import public as public_languages
from core.languages_api import Languages
from core.text import clean_message
from knowledge.deps import Knowledge
from knowledge.kbfile import LANG_RE, KbFileError, dump, file_format, parse_bytes
from knowledge.models import AuditRow, EntryDetail, EntryList, EntrySaved, ImportReport, Notice, UndoCounts
from knowledge.notices import NoticeError
from knowledge.tables import kb_entries
from knowledge.translations import stale_translations

router = APIRouter(prefix="/api/v1/admin", tags=["workshop"])
widget_router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

# The languages the bot speaks, with their own names: the one table in core/languages.py.
LANGUAGES = NAMES
I18N = Path(__file__).resolve().parent.parent / "web" / "i18n"
MAX_IMPORT_BYTES = 5_000_000
FORMATS = {"yaml": ("application/yaml", "yml"), "jsonl": ("application/x-ndjson", "jsonl"), "csv": ("text/csv", "csv")}
# The export is a file, not JSON: OpenAPI says so (its media types) instead of a response model.
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the knowledge base as a file to download (Content-Disposition: attachment)",
        "content": {media: {"schema": {"type": "string"}} for media, _ in FORMATS.values()},
    }
}

webmaster = require_role("webmaster")
# Helpful / not helpful per entry, from the conversations: the app plugs in insights' reader (knowledge is
# below both), see kommunchatt/app.py Components.entry_feedback.
EntryFeedback = Annotated[Callable[[str], dict[str, dict[str, int]]], Depends(component("entry_feedback"))]


def required_languages(settings: dict) -> list[str]:
    """The languages every entry should answer in: the municipality's own list, else every language it offers
    citizens (its `languages`, else every language the bot speaks). A citizen choosing any of them and
    getting another language is a gap the "missing" column must show."""
    wanted = settings.get("required_languages") or settings.get("languages") or list(LANGUAGES)
    return [x for x in wanted if LANG_RE.match(x)]


def _problems(exc: KbFileError) -> list[dict]:
    problems = sorted(exc.problems, key=lambda p: p.line or 0)
    return [{"line": p.line, "entry": p.entry, "field": p.field, "message": p.message} for p in problems]


# ---------------------------------------------------------------- entries


@router.get("/languages", response_model=Languages)
async def languages() -> dict:
    return {"languages": public_languages()}


@router.get("/entries", response_model=EntryList)
async def list_entries(
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    engine: DbEngine,
    q: str = "",
    tag: str = "",
    missing: str = "",
    user=Depends(webmaster),
) -> dict:
    """Entries with their languages, missing translations and last change; `q` searches all text."""
    return await run_db(engine, _entry_rows, engine, knowledge, municipality, q, tag, missing)


def _entry_rows(engine, knowledge, municipality: str, q: str, tag: str, missing: str) -> dict:
    required = required_languages(municipalities.settings(engine, municipality) or {})
    with engine.connect() as conn:
        changed = {
            r.id: (r.updated_at, r.updated_by)
            for r in conn.execute(
                select(kb_entries.c.id, kb_entries.c.updated_at, kb_entries.c.updated_by).where(
                    kb_entries.c.municipality == municipality
                )
            )
        }
    outdated = stale_translations(engine, municipality)
    needle = q.strip().lower()
    rows = []
    for entry in knowledge.store.all(municipality):
        if tag and tag not in entry.tags:
            continue
        languages = sorted(set(entry.answer) | set(entry.questions))
        lacking = [x for x in required if x not in entry.answer]
        if missing and missing in entry.answer:
            continue
        if needle:
            haystack = " ".join(
                [entry.id, *entry.tags, *entry.answer.values(), *(v for vs in entry.questions.values() for v in vs)]
            ).lower()
            if needle not in haystack:
                continue
        updated_at, updated_by = changed.get(entry.id, (None, None))
        rows.append(
            {
                "id": entry.id,
                "question": entry.first_question("sv"),
                "tags": entry.tags,
                "url": entry.url,
                "review_by": entry.review_by.isoformat() if entry.review_by else None,
                "languages": languages,
                "answer_languages": sorted(entry.answer),
                "missing": lacking,
                "stale": sorted(x for x in outdated.get(entry.id, {}) if x in entry.answer),
                "variants": sum(len(v) for v in entry.questions.values()),
                "updated_at": updated_at,
                "updated_by": updated_by,
            }
        )
    return {"entries": rows, "required_languages": required, "languages": list(LANGUAGES)}


@router.get("/entries/{entry_id}", response_model=EntryDetail, response_model_exclude_unset=True)
async def entry_detail(
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    engine: DbEngine,
    feedback: EntryFeedback,
    entry_id: str,
    user=Depends(webmaster),
) -> dict:
    return await run_db(engine, _entry_detail, engine, knowledge, feedback, municipality, entry_id)


def _entry_detail(engine, knowledge, feedback, municipality: str, entry_id: str) -> dict:
    entry = knowledge.store.get(municipality, entry_id)
    if not entry:
        raise HTTPException(404, f"no entry with id '{entry_id}'")
    required = required_languages(municipalities.settings(engine, municipality) or {})
    # Feedback lives in the conversations: the app plugs in insights' reader (knowledge is below both).
    feedback = feedback(municipality).get(entry_id, {"helpful": 0, "not_helpful": 0})
    outdated = stale_translations(engine, municipality, entry_id).get(entry_id, {})
    return {
        "entry": entry.to_dict(),
        "missing": [x for x in LANGUAGES if x not in entry.answer],
        "missing_required": [x for x in required if x not in entry.answer],
        # {language: when the Swedish answer changed}: translations written before that change
        "stale": {lang: at for lang, at in outdated.items() if lang in entry.answer},
        "feedback": feedback,
        "audit": _audit_rows(knowledge, municipality, entry_id, 50),
    }


class Variant(BaseModel):
    entry_id: str
    language: str = Field(..., pattern=r"^[a-z]{2,3}$")
    text: str = Field(..., min_length=1, max_length=500)


@router.post("/variants", response_model=EntrySaved)
async def add_variant(
    municipality: WebmasterMunicipality, knowledge: Knowledge, body: Variant, user=Depends(webmaster)
) -> dict:
    """Add a citizen's wording as a question variant of an entry (one click from the gaps list)."""
    return await run_db(knowledge.store.engine, _add_variant, knowledge, municipality, body, user["username"])


def _add_variant(knowledge, municipality: str, body: Variant, actor: str) -> dict:
    entry = knowledge.store.get(municipality, body.entry_id)
    if not entry:
        raise HTTPException(404, f"no entry with id '{body.entry_id}'")
    text = clean_message(body.text)
    variants = entry.questions.setdefault(body.language, [])
    if text in variants:
        return {"id": entry.id, "action": "unchanged"}
    variants.append(text)
    return {"id": entry.id, "action": knowledge.upsert(entry, actor=actor)}


# ---------------------------------------------------------------- import / export / audit


@router.post("/import", response_model=ImportReport, response_model_exclude_unset=True)
async def import_file(
    request: Request,
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    filename: str = "import.yml",
    replace: bool = False,
    dry_run: bool = False,
    user=Depends(webmaster),
) -> dict:
    """The file is the request body. Nothing is imported unless the whole file is valid; the report
    names each problem's line, entry and field."""
    raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"the file is larger than {MAX_IMPORT_BYTES // 1_000_000} MB")
    try:
        entries = parse_bytes(raw, filename, municipality)
    except KbFileError as exc:
        problems = _problems(exc)
        raise Invalid(
            f"nothing was imported: the {file_format(filename)} file has {len(problems)} problem(s); "
            f"the first: {summary(problems[:1])}",
            problems,
        ) from None
    existing = {e.id: e.to_dict() for e in await run_db(knowledge.store.engine, knowledge.store.all, municipality)}
    if dry_run:
        counts = {
            "create": 0,
            "update": 0,
            "unchanged": 0,
            "delete": len(set(existing) - {e.id for e in entries}) if replace else 0,
        }
        for entry in entries:
            before = existing.get(entry.id)
            counts["create" if before is None else "unchanged" if before == entry.to_dict() else "update"] += 1
        return {"ok": True, "dry_run": True, "entries": len(entries), "counts": counts}
    # Stored at once, indexed in the background (off the event loop); the page polls
    # /api/v1/knowledge/status until every worker has reached `audit_id` ("live").
    counts = await run_in_threadpool(
        knowledge.import_entries, municipality, entries, replace=replace, actor=user["username"], wait=False
    )
    audit_id = await run_db(knowledge.store.engine, knowledge.store.last_audit_id)
    return {"ok": True, "dry_run": False, "entries": len(entries), "counts": counts, "audit_id": audit_id}


def attachment(name: str) -> str:
    """A Content-Disposition for a download named `name` (RFC 6266): an ASCII fallback `filename` and the
    real name percent-encoded in `filename*`. Control characters are dropped from both (a header cannot
    carry them: the server closes the connection without an answer), quotes and backslashes and anything
    outside printable ASCII become "_" in the fallback."""
    name = "".join(ch for ch in name if ch.isprintable()) or "download"
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/export", response_class=Response, responses=EXPORT_RESPONSES)
async def export_file(
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    engine: DbEngine,
    format: str = "yaml",
    user=Depends(webmaster),
) -> Response:
    if format not in FORMATS:
        raise HTTPException(422, "format must be yaml, jsonl or csv")
    # A global admin passes the scope check with any id: an unknown municipality is a 404 here, before
    # its id goes into a file name (an id with control characters cannot exist, and NUL would make
    # PostgreSQL refuse the query: not asked).
    if not municipality.isprintable() or await run_db(engine, municipalities.settings, engine, municipality) is None:
        raise HTTPException(404, f"no municipality with id {municipality!r}")
    media, ext = FORMATS[format]
    body = dump(await run_db(engine, knowledge.store.all, municipality), format)
    name = f"kunskapsbank-{municipality}-{dt.date.today().isoformat()}.{ext}"
    return Response(body, media_type=f"{media}; charset=utf-8", headers={"content-disposition": attachment(name)})


def _audit_rows(knowledge, municipality: str, entry_id: str | None, limit: int) -> list[dict]:
    rows = []
    for row in knowledge.store.audit(municipality, entry_id, limit=limit):
        before, after = row.get("before") or {}, row.get("after") or {}
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        rows.append({**row, "changed": changed})
    return rows


@router.get("/audit", response_model=list[AuditRow])
async def audit(
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    entry_id: str | None = None,
    limit: int = 100,
    user=Depends(webmaster),
) -> list[dict]:
    """Every change: who, when, what (the entry before and after, and which fields changed)."""
    return _audit_rows(knowledge, municipality, entry_id, min(max(limit, 1), 1000))


class Undo(BaseModel):
    since_id: int = Field(..., ge=1, le=2**63 - 1, description="the audit id of the first change to undo")


@router.post("/audit/undo", response_model=UndoCounts)
async def audit_undo(
    municipality: WebmasterMunicipality, knowledge: Knowledge, body: Undo, user=Depends(webmaster)
) -> dict:
    """Undo every change from an audit id on (an import that replaced too much, a deletion): each entry
    gets its earlier version back. The undoing is audited, so it can be undone in turn."""
    return await asyncio.to_thread(knowledge.undo, municipality, body.since_id, user["username"])


# ---------------------------------------------------------------- notices


@router.get("/notices", response_model=list[Notice])
async def list_notices(
    municipality: WebmasterMunicipality, knowledge: Knowledge, user=Depends(webmaster)
) -> list[dict]:
    return await run_db(knowledge.store.engine, knowledge.notices.list, municipality)


@router.post("/notices", status_code=201, response_model=Notice)
async def create_notice(
    municipality: WebmasterMunicipality, knowledge: Knowledge, body: dict, user=Depends(webmaster)
) -> dict:
    try:
        engine = knowledge.store.engine
        return await run_db(engine, knowledge.notices.create, municipality, body, actor=user["username"])
    except NoticeError as exc:
        raise HTTPException(422, exc.problems) from None


@router.put("/notices/{notice_id}", response_model=Notice)
async def update_notice(
    municipality: WebmasterMunicipality,
    knowledge: Knowledge,
    notice_id: int,
    body: dict,
    user=Depends(webmaster),
) -> dict:
    try:
        notice = await run_db(
            knowledge.store.engine, knowledge.notices.update, municipality, notice_id, body, actor=user["username"]
        )
    except NoticeError as exc:
        raise HTTPException(422, exc.problems) from None
    if not notice:
        raise HTTPException(404, f"no notice with id {notice_id}")
    return notice


@router.delete("/notices/{notice_id}", status_code=204)
async def delete_notice(
    municipality: WebmasterMunicipality, knowledge: Knowledge, notice_id: int, user=Depends(webmaster)
):
    if not await run_db(knowledge.store.engine, knowledge.notices.delete, municipality, notice_id):
        raise HTTPException(404, f"no notice with id {notice_id}")


# ---------------------------------------------------------------- the widget's extras (public)


class WidgetTexts(BaseModel):
    language: str
    dir: str = Field(description="ltr or rtl")
    languages: dict[str, str] = Field(description="every language the widget offers, by code, in its own name")
    strings: dict[str, Any] = Field(description="the widget's interface texts in this language")


@widget_router.get("/i18n/{language}", response_model=WidgetTexts)
async def widget_strings(language: str) -> Response:
    """The widget's interface texts in one language (web/i18n/<lang>.json), Swedish as the fallback."""
    if language not in LANGUAGES:
        raise HTTPException(404, f"the widget has no texts in '{language}'")
    path = I18N / f"{language}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return JSONResponse(
        {"language": language, "dir": "rtl" if language in RTL else "ltr", "languages": LANGUAGES, "strings": data},
        headers={"cache-control": "public, max-age=300"},
    )
