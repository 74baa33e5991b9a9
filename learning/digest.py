"""The weekly digest: per department, the week's work items by kind and status — as a report (JSON), an
export (CSV) and an e-mail to each department's contacts through the municipality's SMTP server.

SMTP is set per municipality (settings "smtp": host, port, sender, starttls, username); the password
comes from the environment (KOMMUNCHATT_SMTP_PASSWORD_<MUNICIPALITY>, else KOMMUNCHATT_SMTP_PASSWORD),
never from the database that staff pages show. Without "smtp" no mail is sent and the report is still there.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import smtplib
import time
from email.message import EmailMessage

from sqlalchemy import Engine, func, select

from core import municipalities as municipality_settings
from core.errors import Conflicting, Invalid, NotFound
from learning import worklist
from learning.owners import list_departments
from learning.worklist import KINDS, STATUSES, work_items

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
SEND_WEEKDAY, SEND_HOUR = 0, 7  # Monday 07:00 local time: the previous week's digest
KIND_WORDS = {
    "negative_feedback": "Svar som inte hjälpte",
    "low_rating": "Lågt betyg med kommentar",
    "unanswered": "Obesvarade frågor",
    "overdue_review": "Passerat granskningsdatum",
    "review_due": "Granskningsdatum närmar sig",
    "broken_link": "Trasiga länkar",
}
STATUS_WORDS = {"new": "ny", "in_progress": "pågår", "done": "klar", "wont_do": "åtgärdas inte"}


def week_of(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(week: str, tz: dt.tzinfo) -> tuple[float, float]:
    """The week's start and end (Monday 00:00 to the next Monday) as UNIX seconds in the municipality's zone."""
    match = WEEK.match(week)
    if not match:
        raise Invalid("week must look like 2026-W49", [{"field": "week", "message": "YYYY-Www"}])
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise Invalid(f"no such week: {week}", [{"field": "week", "message": str(exc)}]) from exc
    start = dt.datetime.combine(monday, dt.time(), tz)
    return start.timestamp(), (start + dt.timedelta(days=7)).timestamp()


def _tz(engine: Engine, municipality: str) -> dt.tzinfo:
    settings = municipality_settings.settings(engine, municipality)
    if settings is None:
        raise NotFound(f"no municipality with id '{municipality}'")
    return municipality_settings.timezone(settings)


def digest(engine: Engine, municipality: str, week: str | None = None) -> dict:
    """Per department: the items that landed in the week, counted by kind and status, and the older ones still
    open (what the owner has not got to)."""
    tz = _tz(engine, municipality)
    week = week or week_of(dt.datetime.now(tz).date())
    start, end = week_bounds(week, tz)
    items = worklist.items(engine, municipality, since=start, until=end, limit=100_000)
    older = _open_before(engine, municipality, start)
    sections = []
    for department in list_departments(engine, municipality):
        mine = [i for i in items if i["department_id"] == department["id"]]
        counts = {k: {s: 0 for s in STATUSES} for k in KINDS}
        for item in mine:
            counts[item["kind"]][item["status"]] += 1
        sections.append(
            {
                "department_id": department["id"],
                "department": department["name"],
                "is_default": department["is_default"],
                "contacts": department["contacts"],
                "total": len(mine),
                "counts": counts,
                "open_before": older.get(department["id"], 0),
                "items": mine,
            }
        )
    return {
        "municipality": municipality,
        "week": week,
        "from": dt.datetime.fromtimestamp(start, tz).isoformat(),
        "until": dt.datetime.fromtimestamp(end, tz).isoformat(),
        "total": len(items),
        "departments": sections,
    }


def _open_before(engine: Engine, municipality: str, start: float) -> dict[int, int]:
    query = (
        select(work_items.c.department_id, func.count())
        .where(
            work_items.c.municipality == municipality,
            work_items.c.created_at < start,
            work_items.c.status.in_(("new", "in_progress")),
        )
        .group_by(work_items.c.department_id)
    )
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


CSV_COLUMNS = ("department", "kind", "status", "entry_id", "conversation_id", "text", "created", "changed_by", "id")


def digest_csv(report: dict) -> str:
    """One row per item (texts masked as on the list); Excel opens it as UTF-8 thanks to the BOM."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for section in report["departments"]:
        for item in section["items"]:
            created = dt.datetime.fromtimestamp(item["created_at"], dt.UTC).isoformat(timespec="seconds")
            writer.writerow(
                [
                    section["department"],
                    item["kind"],
                    item["status"],
                    item["entry_id"] or "",
                    item["conversation_id"] or "",
                    _cell(item["text"]),
                    created,
                    item["changed_by"] or "",
                    item["id"],
                ]
            )
    return "\ufeff" + out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet must not take a cell for a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def mail_text(report: dict, section: dict) -> str:
    lines = [
        f"Veckosammanställning {report['week']} för {section['department']}",
        f"({report['from'][:10]} – {report['until'][:10]})",
        "",
    ]
    for kind in KINDS:
        counts = section["counts"][kind]
        if sum(counts.values()):
            parts = ", ".join(f"{STATUS_WORDS[s]} {n}" for s, n in counts.items() if n)
            lines.append(f"{KIND_WORDS[kind]}: {sum(counts.values())} ({parts})")
    if section["open_before"]:
        lines.append(f"Öppna sedan tidigare veckor: {section['open_before']}")
    lines += ["", "Ärenden:"]
    for item in section["items"][:50]:
        ref = item["entry_id"] or item["conversation_id"] or ""
        if item["detail"].get("review_by"):
            ref += f" (granskas senast {item['detail']['review_by']})"
        lines.append(f"- [{STATUS_WORDS[item['status']]}] {KIND_WORDS[item['kind']]} {ref}: {item['text'][:200]}")
    if len(section["items"]) > 50:
        lines.append(f"... och {len(section['items']) - 50} till i arbetslistan.")
    return "\n".join(lines) + "\n"


def smtp_settings(engine: Engine, municipality: str) -> dict | None:
    """The municipality's SMTP settings with the password from the environment; None: no mail."""
    smtp = dict((municipality_settings.settings(engine, municipality) or {}).get("smtp") or {})
    if not smtp.get("host") or not smtp.get("sender"):
        return None
    smtp["password"] = os.environ.get(f"KOMMUNCHATT_SMTP_PASSWORD_{municipality.upper().replace('-', '_')}") or (
        os.environ.get("KOMMUNCHATT_SMTP_PASSWORD")
    )
    return smtp


def send(engine: Engine, municipality: str, week: str | None = None) -> dict:
    """Mail each department with work its digest, to its contacts' e-mail addresses; returns who got one."""
    smtp = smtp_settings(engine, municipality)
    if smtp is None:
        raise Invalid(f"'{municipality}' has no SMTP server configured (settings 'smtp': host and sender)")
    report = digest(engine, municipality, week)
    try:
        return _deliver(report, smtp)
    except (smtplib.SMTPException, OSError, ValueError) as exc:  # refused, unreachable, a name that is no name
        raise Conflicting(
            f"the mail server {smtp['host']}:{smtp.get('port') or 25} did not take the digest: {exc}"
        ) from exc


def _deliver(report: dict, smtp: dict) -> dict:
    sent = []
    with smtplib.SMTP(smtp["host"], int(smtp.get("port") or 25), timeout=float(smtp.get("timeout_s") or 10)) as server:
        if smtp.get("starttls"):
            server.starttls()
        if smtp.get("username") and smtp.get("password"):
            server.login(smtp["username"], smtp["password"])
        for section in report["departments"]:
            to = [c["email"] for c in section["contacts"] if c.get("email")]
            if not to or (not section["total"] and not section["open_before"]):
                continue
            message = EmailMessage()
            message["Subject"] = f"Kommunchatt: veckosammanställning {report['week']} – {section['department']}"
            message["From"] = smtp["sender"]
            message["To"] = ", ".join(to)
            message.set_content(mail_text(report, section))
            message.add_attachment(
                digest_csv({"departments": [section]}).encode(),
                maintype="text",
                subtype="csv",
                filename=f"arbetslista-{report['week']}.csv",
            )
            server.send_message(message)
            sent.append({"department": section["department"], "to": to})
    return {"week": report["week"], "sent": sent, "at": time.time()}


def previous_week(now: dt.datetime) -> str | None:
    """The week whose digest is due at `now` (Monday from 07:00 local on: last week's), else None."""
    if now.weekday() == SEND_WEEKDAY and now.hour < SEND_HOUR:
        return None
    return week_of(now.date() - dt.timedelta(days=7))
