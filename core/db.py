"""The database engine and the one shared `metadata`: SQLite embedded by default, PostgreSQL for several workers.

Each table is defined next to the store that owns it, on this `metadata`; `kommunchatt.schema` imports
every table module, so the metadata is complete there (creating tables, migrations).
Times are stored as UNIX seconds (float): the same in both databases, and what reports compute with.
`run_db` is the one way to run database work from async code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, MetaData, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeout

metadata = MetaData()


# How long one statement waits for another process's lock. SQLite: briefly, on the event loop's thread, and
# `run_db` tries again off the loop until LOCK_WAIT_S; PostgreSQL: lock_timeout. Then the request gets a
# 503 (kommunchatt/faults.py) instead of hanging.
LOCK_WAIT_S = 2.0
SQLITE_BUSY_S = 0.2


def private_file(path: str | Path) -> None:
    """Create a database file readable by its owner only (0600), or tighten an existing one. SQLite gives
    its -wal and -shm files the same mode."""
    path = Path(path)
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)


def make_engine(url: str) -> Engine:
    """An engine with the settings each database needs for many short concurrent transactions."""
    if url.startswith("sqlite"):
        private_file(make_url(url).database or "")
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_S})

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
    options = f"-c lock_timeout={int(LOCK_WAIT_S * 1000)}"
    return create_engine(url, pool_size=PG_POOL_SIZE, max_overflow=20, pool_pre_ping=True,
                         pool_timeout=LOCK_WAIT_S, connect_args={"options": options})


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
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:  # another process holds the write lock: wait off the loop
                if not is_locked(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(db_executor(engine), functools.partial(fn, *args, **kwargs))


def is_locked(exc: BaseException) -> bool:
    """A lock another transaction holds: SQLite's "database is locked", PostgreSQL's lock_timeout (55P03)."""
    if isinstance(exc, SqlTimeout):  # no pooled connection came free in time
        return True
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code == "55P03" or "database is locked" in str(exc) or "database table is locked" in str(exc)


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
