"""What the knowledge API answers: response models for OpenAPI and generated clients.

Models allow extra fields (as handoff/models.py): they document what each answer has at least, and a
field added by a later change reaches the client before its model is updated. Routes with optional
fields answer with `response_model_exclude_unset=True`, so a field the handler left out stays out.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- entries (knowledge/api.py)


class EntryOut(Open):
    """An entry in the file format (knowledge/kbfile.py); extra fields pass through."""

    id: str
    answer: dict[str, str]
    questions: dict[str, list[str]] = {}


class EntrySaved(Open):
    id: str
    action: str = Field(description="create | update | unchanged")


class MunicipalityIndex(Open):
    municipality: str
    entries: int = Field(description="entries stored")
    indexed: int = Field(description="entries the answering worker searches")
    pending: int = Field(description="changes not yet answerable")
    lag_s: float = Field(description="age of the oldest pending change")
    live: bool


class WorkerIndex(Open):
    worker: str
    audit_seen: int = Field(description="every change up to this audit id is answerable on this worker")
    pending: int
    done: int
    total: int
    lag_s: float
    heartbeat_age_s: float


class IndexStatus(Open):
    """How far the search index is behind the knowledge base (`KnowledgeService.status`)."""

    audit_id: int
    municipalities: list[MunicipalityIndex]
    live: bool = Field(description="every running worker answers with every change up to audit_id")
    workers: int
    workers_behind: int
    done: int = Field(description="the slowest worker's progress through the batch it is indexing")
    total: int
    worker_list: list[WorkerIndex]


# ---------------------------------------------------------------- the workshop (knowledge/admin_api.py)


class EntryRow(Open):
    id: str
    question: str
    tags: list[str]
    url: str | None
    review_by: str | None = Field(description="YYYY-MM-DD")
    languages: list[str]
    answer_languages: list[str]
    missing: list[str] = Field(description="required languages the entry does not answer in")
    stale: list[str] = Field(description="translations written before the Swedish answer last changed")
    variants: int
    updated_at: float | None
    updated_by: str | None


class EntryList(Open):
    entries: list[EntryRow]
    required_languages: list[str]
    languages: list[str]


class AuditRow(Open):
    id: int
    municipality: str
    entry_id: str
    action: str = Field(description="create | update | delete")
    actor: str | None
    at: float
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed: list[str] = Field(description="the fields that differ between before and after")


class EntryDetail(Open):
    entry: EntryOut
    missing: list[str]
    missing_required: list[str]
    stale: dict[str, float] = Field(description="language: when the Swedish answer changed after it")
    feedback: dict[str, int] = Field(description="helpful / not_helpful")
    audit: list[AuditRow]


class ImportReport(Open):
    ok: bool
    dry_run: bool
    entries: int = Field(description="entries in the file")
    counts: dict[str, int] = Field(description="create, update, unchanged, delete")
    audit_id: int | None = Field(None, description="poll /api/v1/knowledge/status until it is live (not on a dry run)")


class UndoCounts(Open):
    restored: int
    removed: int


# ---------------------------------------------------------------- notices (knowledge/notices.py)


class PublicNotice(Open):
    """A valid notice as the widget's banner shows it (no staff details)."""

    id: int
    area: str
    text: str = Field(description="in `language`")
    language: str | None
    url: str | None
    valid_from: float
    valid_until: float


class Notice(PublicNotice):
    """A notice as the workshop edits it."""

    texts: dict[str, str]
    keywords: list[str]
    created_by: str | None
    updated_at: float | None

