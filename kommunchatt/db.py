"""The database schema and engine: SQLite embedded by default, PostgreSQL for several workers.

Times are stored as UNIX seconds (float): the same in both databases, and what reports compute with.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

metadata = MetaData()

municipalities = Table(
    "municipalities",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("settings", JSON, nullable=False, default=dict),
)

kb_entries = Table(
    "kb_entries",
    metadata,
    Column("municipality", String(64), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("updated_by", String(100)),
)

kb_audit = Table(
    "kb_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("entry_id", String(128), nullable=False),
    Column("action", String(16), nullable=False),  # create | update | delete
    Column("actor", String(100)),
    Column("at", Float, nullable=False, default=time.time),
    Column("before", JSON),
    Column("after", JSON),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("municipality", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("state", String(16), nullable=False),  # bot | queued | agent | closed
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("handoff_reason", String(32)),
    Column("topic", String(64)),
    Column("queued_at", Float),
    Column("assigned_to", Integer, ForeignKey("users.id")),
    Column("assigned_at", Float),
    Column("first_response_at", Float),
    Column("closed_at", Float),
    Column("outcome", String(32)),
    Column("csat_score", Integer),
    Column("csat_comment", Text),
    Index("ix_conversations_state", "state", "queued_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("sender", String(16), nullable=False),  # citizen | bot | agent | system | note
    Column("text", Text, nullable=False),
    Column("data", JSON),  # buttons, url, custom payloads, author
    Column("client_id", String(64)),  # the widget's id for a message: resending it is idempotent
    Column("created_at", Float, nullable=False, default=time.time),
    Index("ix_messages_conversation", "conversation_id", "id"),
    Index("ix_messages_client", "conversation_id", "client_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("display_name", String(200)),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # agent | webmaster | admin
    Column("languages", JSON, nullable=False, default=list),
    Column("municipalities", JSON, nullable=False, default=list),
    Column("status", String(16), nullable=False, default="offline"),
    Column("max_chats", Integer, nullable=False, default=3),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False, default=time.time),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False, default=time.time),
    Column("expires_at", Float, nullable=False),
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id")),
    Column("municipality", String(64), nullable=False),
    Column("name", String(200)),
    Column("contact", String(200), nullable=False),
    Column("message", Text, nullable=False),
    Column("language", String(8)),
    Column("status", String(16), nullable=False, default="open"),
    Column("created_at", Float, nullable=False, default=time.time),
)


def make_engine(url: str) -> Engine:
    """An engine with the settings each database needs for many short concurrent transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # WAL: readers never block the writer
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            if engine in _checkpointed:  # a background thread checkpoints: a commit never does it
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return create_engine(url, pool_size=PG_POOL_SIZE, max_overflow=20, pool_pre_ping=True)


PG_POOL_SIZE = 10
_T = TypeVar("_T")
_executors: weakref.WeakKeyDictionary[Engine, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_checkpointed: weakref.WeakSet[Engine] = weakref.WeakSet()
log = logging.getLogger(__name__)


def db_executor(engine: Engine) -> ThreadPoolExecutor:
    """The threads that run PostgreSQL work off the event loop: as many as pooled connections."""
    executor = _executors.get(engine)
    if executor is None:
        executor = _executors[engine] = ThreadPoolExecutor(PG_POOL_SIZE, thread_name_prefix="db")
    return executor


async def run_db(engine: Engine, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Database work for the event loop, done the way that is fastest for each database.

    PostgreSQL: on a thread pool the size of the connection pool, because a commit waits for the
    server's disk (about 10 ms here) and the loop must keep serving meanwhile.

    SQLite: right here, on the loop's thread. An embedded statement is a fraction of a millisecond of
    CPU, a commit does not wait for the disk (WAL with synchronous=NORMAL; checkpoints run in the
    background, see `WalCheckpointer`), and a hop to a thread costs more than it saves: the thread
    must win the GIL back after every statement while the loop is busy (measured per message, loop
    50 % busy: p50 0.7 ms here, 8.8 ms on a thread, p99 9 vs 93 ms). It also makes the loop the
    process's only writer, so it never sleeps in SQLite's busy handler for its own other connection.
    """
    if engine.dialect.name == "sqlite":
        return fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(db_executor(engine), functools.partial(fn, *args, **kwargs))


def close_executor(engine: Engine) -> None:
    executor = _executors.pop(engine, None)
    if executor:
        executor.shutdown(wait=True)


class WalCheckpointer:
    """Copies SQLite's write-ahead log into the database file every second, from its own thread.

    The checkpoint is the step that syncs to disk; left to SQLite, it runs inside whichever commit
    crosses 1000 pages, which would stall the event loop. PASSIVE never waits for readers or writers.
    """

    def __init__(self, engine: Engine, every: float = 1.0):
        self.engine, self.every = engine, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "sqlite":
            return
        _checkpointed.add(self.engine)
        self.engine.dispose()  # pooled connections were opened with the automatic checkpoint
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("WAL checkpoint failed")

    def stop(self) -> None:
        if self._thread:
            self._stop.set()
            self._thread.join(timeout=5)
            with contextlib.suppress(Exception), self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            _checkpointed.discard(self.engine)


def init_db(engine: Engine) -> None:
    """Create missing tables (idempotent) and the default municipality."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        exists = conn.execute(municipalities.select().where(municipalities.c.id == "default")).first()
        if not exists:
            conn.execute(municipalities.insert().values(id="default", name="Default", settings={}))


# Disruption notices (störningsinformation): shown in the widget while valid, answered first when a
# question matches them. Appended by the workshop (knowledge/notices.py).
notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("area", String(200)),  # where: a street, a school, a district ("" = the whole municipality)
    Column("texts", JSON, nullable=False),  # {language: text}
    Column("keywords", JSON, nullable=False, default=list),  # extra words that make a question match
    Column("url", String(500)),
    Column("valid_from", Float, nullable=False),
    Column("valid_until", Float, nullable=False),
    Column("created_by", String(100)),
    Column("created_at", Float, nullable=False, default=time.time),
    Column("updated_at", Float, nullable=False, default=time.time),
    Index("ix_notices_validity", "municipality", "valid_until"),
)


# --- the agent side (handoff/) ---------------------------------------------------------------------

assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # auto | claim | transfer
    Column("queued_at", Float),  # the conversation's queued_at when it was taken (waiting-time reports)
    Column("wait_seconds", Float),  # set when the citizen waited in the queue for this assignment
    Column("started_at", Float, nullable=False),
    Column("first_response_at", Float),
    Column("ended_at", Float),
    Column("end_reason", String(16)),  # closed | handback | transfer | dropped | requeued
    Index("ix_assignments_conversation", "conversation_id", "started_at"),
    Index("ix_assignments_started", "started_at"),
)

agent_connections = Table(
    "agent_connections",  # one row per console WebSocket: presence and the grace period, across processes
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("process", String(64), nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("closed", Boolean, nullable=False, default=False),
    Index("ix_agent_connections_user", "user_id", "last_seen"),
)

canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("municipality", String(64), nullable=False),
    Column("shortcut", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("texts", JSON, nullable=False),  # {"sv": "...", "en": "..."}
    Column("updated_at", Float, nullable=False, default=time.time),
    Column("updated_by", String(100)),
    Index("ux_canned_shortcut", "municipality", "shortcut", unique=True),
)
