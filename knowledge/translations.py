"""Which translations of an answer are out of date: the source language's answer (Swedish) changed after
the translation last did. Computed from the audit trail, which records every answer before and after,
so nothing extra is stored and an edit of the translation itself makes it current again."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine, select

from knowledge.tables import kb_audit

SOURCE_LANGUAGE = "sv"


def answer_changes(rows: list[dict]) -> dict[str, dict[str, float]]:
    """entry id -> {language: when its answer last changed}, from audit rows oldest first."""
    changed: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row["action"] == "delete":
            changed.pop(row["entry_id"], None)
            continue
        before = (row.get("before") or {}).get("answer") or {}
        after = (row.get("after") or {}).get("answer") or {}
        for language in after:
            if before.get(language) != after[language]:
                changed[row["entry_id"]][language] = row["at"]
    return dict(changed)


def stale(changes: dict[str, float], source: str = SOURCE_LANGUAGE) -> dict[str, float]:
    """{language: when the source changed} for each translation older than the source's last change."""
    source_at = changes.get(source)
    if source_at is None:
        return {}
    return {lang: source_at for lang, at in changes.items() if lang != source and at < source_at}


def stale_translations(engine: Engine, municipality: str, entry_id: str | None = None) -> dict[str, dict[str, float]]:
    """entry id -> {out-of-date language: when the Swedish answer changed}, for entries that have any."""
    query = (
        select(kb_audit.c.entry_id, kb_audit.c.action, kb_audit.c.at, kb_audit.c.before, kb_audit.c.after)
        .where(kb_audit.c.municipality == municipality)
        .order_by(kb_audit.c.id)
    )
    if entry_id:
        query = query.where(kb_audit.c.entry_id == entry_id)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    out = {}
    for entry, changes in answer_changes(rows).items():
        languages = stale(changes)
        if languages:
            out[entry] = languages
    return out
