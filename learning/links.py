"""The link check: links in answers (an entry's url and the addresses in its answer texts) checked on the
municipality's own sites, on a schedule, politely; a link broken twice in a row goes to the entry's owner.

Polite and bounded: HTTP HEAD (GET only when a server refuses HEAD with 405/501), at most `concurrency`
requests at once, `per_host_delay_s` between two requests to one host, a timeout per request, and only the
hosts the municipality set (settings "link_check" → "hosts") or, unset, the hosts of its entries' urls:
an address elsewhere in an answer is never requested. Twice in a row (two runs, a day apart by default)
so that a site's bad minute is no work for anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Column, Engine, Float, Integer, String, Table, Text, select, update

from core import municipalities as municipality_settings
from core.db import metadata, run_db
from core.errors import Conflicting, NotFound
from knowledge.store import KnowledgeStore
from learning import signals, worklist
from learning.claims import insert_ignore

URL = re.compile(r"https?://[^\s<>\"'\[\]{}|\\^`]+", re.IGNORECASE)
TRAILING = ".,;:!?)»”’"
BROKEN_AFTER = 2  # failures in a row before a link is on a list
USER_AGENT = "Kommunchatt-linkcheck/1.0 (the municipality's chat checks its own links)"

link_checks = Table(
    "link_checks",
    metadata,
    Column("municipality", String(64), primary_key=True),
    Column("url_key", String(40), primary_key=True),  # sha1 of the url: urls can be longer than an index allows
    Column("url", Text, nullable=False),
    Column("status", Integer),  # the last HTTP status; None: no answer (connection error, timeout)
    Column("error", String(200)),
    Column("failures", Integer, nullable=False),  # broken checks in a row
    Column("checked_at", Float, nullable=False),
    Column("ok_at", Float),
)


@dataclass(frozen=True)
class CheckSettings:
    """A municipality's "link_check" settings, with the defaults."""

    enabled: bool = True
    hosts: tuple[str, ...] = ()  # empty: the hosts of the entries' urls
    every_hours: float = 24.0
    concurrency: int = 4
    per_host_delay_s: float = 1.0
    timeout_s: float = 10.0

    @classmethod
    def of(cls, settings: dict | None) -> CheckSettings:
        raw = dict((settings or {}).get("link_check") or {})
        raw["hosts"] = tuple(h.lower() for h in raw.get("hosts") or ())
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})


def url_key(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


def links_of(entry) -> list[str]:
    """The entry's url and every address in its answers, in order, once each."""
    found = [entry.url] if entry.url else []
    for text in entry.answer.values():
        found += [m.group(0).rstrip(TRAILING) for m in URL.finditer(text or "")]
    return list(dict.fromkeys(u for u in found if u))


def host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def own_links(entries, settings: CheckSettings) -> tuple[dict[str, list[str]], list[str]]:
    """url -> the entries that link to it, for the municipality's own hosts; and the urls left out."""
    hosts = set(settings.hosts) or {host(e.url) for e in entries if e.url}
    wanted: dict[str, list[str]] = defaultdict(list)
    skipped: list[str] = []
    for entry in entries:
        for url in links_of(entry):
            if host(url) in hosts:
                wanted[url].append(entry.id)
            else:
                skipped.append(url)
    return dict(wanted), sorted(set(skipped))


class HostPacer:
    """One request at a time per host, `delay` seconds apart: the municipality's web server is not load-tested."""

    def __init__(self, delay: float):
        self.delay = delay
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.last: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def turn(self, name: str):
        async with self.locks[name]:
            wait = self.last.get(name, 0.0) + self.delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self.last[name] = time.monotonic()


async def probe(client: httpx.AsyncClient, url: str) -> tuple[int | None, str | None]:
    """(HTTP status, None) or (None, the error): HEAD, and GET when HEAD is not allowed (the body not read)."""
    try:
        response = await client.head(url)
        if response.status_code in (405, 501):
            async with client.stream("GET", url) as streamed:
                return streamed.status_code, None
        return response.status_code, None
    except httpx.HTTPError as exc:
        return None, (f"{type(exc).__name__}: {exc}")[:200]


async def check_urls(urls: list[str], settings: CheckSettings, client: httpx.AsyncClient | None = None) -> dict:
    """Every url's (status, error), with at most `concurrency` requests at once and the per-host delay."""
    pacer, gate = HostPacer(settings.per_host_delay_s), asyncio.Semaphore(max(1, settings.concurrency))
    own = client is None
    client = client or httpx.AsyncClient(
        timeout=settings.timeout_s, follow_redirects=True, headers={"user-agent": USER_AGENT}
    )

    async def one(url: str):
        async with pacer.turn(host(url)), gate:
            return url, await probe(client, url)

    try:
        return dict(await asyncio.gather(*(one(u) for u in urls)))
    finally:
        if own:
            await client.aclose()


def broken(status: int | None) -> bool:
    return status is None or status >= 400


def record(engine: Engine, municipality: str, results: dict, now: float) -> dict[str, dict]:
    """Store each url's result; returns url -> its row after this check (failures counted in a row)."""
    out = {}
    with engine.begin() as conn:
        keys = [url_key(u) for u in results]
        previous = {
            r.url_key: r.failures
            for r in conn.execute(
                select(link_checks.c.url_key, link_checks.c.failures).where(
                    link_checks.c.municipality == municipality, link_checks.c.url_key.in_(keys)
                )
            )
        }
        for url, (status, error) in results.items():
            key = url_key(url)
            failures = previous.get(key, 0) + 1 if broken(status) else 0
            row = {"status": status, "error": error, "failures": failures, "checked_at": now, "url": url}
            if not broken(status):
                row["ok_at"] = now
            if key in previous:
                conn.execute(
                    update(link_checks)
                    .where(link_checks.c.municipality == municipality, link_checks.c.url_key == key)
                    .values(**row)
                )
            else:
                insert_ignore(
                    conn,
                    link_checks,
                    [{"municipality": municipality, "url_key": key, **row}],
                    ["municipality", "url_key"],
                )
            out[url] = row
    return out


def _signals(municipality: str, wanted: dict[str, list[str]], rows: dict[str, dict], now: float) -> list:
    found = []
    for url, row in rows.items():
        if row["failures"] < BROKEN_AFTER:
            continue
        for entry_id in wanted[url]:
            found.append(
                signals.Signal(
                    municipality=municipality,
                    source_key=f"link:{entry_id}:{url_key(url)[:16]}",
                    kind="broken_link",
                    occurred_at=now,
                    text=url[:2000],
                    entry_id=entry_id,
                    detail={"url": url, "status": row["status"], "error": row["error"], "failures": row["failures"]},
                )
            )
    return found


_checking: set[str] = set()  # this process's checks under way: one per municipality at a time


def checking(municipality: str) -> bool:
    return municipality in _checking


async def check_municipality(engine: Engine, municipality: str, client: httpx.AsyncClient | None = None) -> dict:
    """Check the municipality's own links once, record the results and flag the ones broken twice in a row."""
    if municipality in _checking:
        raise Conflicting(f"the links of '{municipality}' are being checked already")
    _checking.add(municipality)
    try:
        return await _check(engine, municipality, client)
    finally:
        _checking.discard(municipality)


async def _check(engine: Engine, municipality: str, client: httpx.AsyncClient | None) -> dict:
    config = await run_db(engine, municipality_settings.settings, engine, municipality)
    if config is None:
        raise NotFound(f"no municipality with id '{municipality}'")
    settings = CheckSettings.of(config)
    entries = await run_db(engine, KnowledgeStore(engine).all, municipality)
    wanted, skipped = own_links(entries, settings)
    started = time.time()
    results = await check_urls(list(wanted), settings, client)
    rows = await run_db(engine, record, engine, municipality, results, time.time())
    flagged = await run_db(engine, worklist.add, engine, _signals(municipality, wanted, rows, time.time()))
    return {
        "municipality": municipality,
        "checked": len(results),
        "broken": sorted(u for u, r in rows.items() if broken(r["status"])),
        "flagged": flagged,
        "skipped": skipped,
        "seconds": round(time.time() - started, 3),
    }


def statuses(engine: Engine, municipality: str) -> list[dict]:
    """The last result of every link checked, broken ones first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(link_checks)
            .where(link_checks.c.municipality == municipality)
            .order_by(link_checks.c.failures.desc(), link_checks.c.url)
        )
        return [{k: getattr(r, k) for k in ("url", "status", "error", "failures", "checked_at", "ok_at")} for r in rows]
