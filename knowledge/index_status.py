"""Where each service worker's search index stands, kept in the database.

A change is answerable once every running worker has indexed it. Workers run in other processes
(and on other machines), so each one publishes its state here: the audit id it has applied up to,
what it is still indexing, and a heartbeat. A CLI import, the workshop and the status endpoint read
it to tell "indexing 120 of 1000" and then "live".
"""

from __future__ import annotations

import time

from sqlalchemy import Column, Engine, Float, Integer, String, Table, delete, insert, select, update

from core.db import metadata

kb_index_workers = Table(
    "kb_index_workers",
    metadata,
    Column("worker", String(120), primary_key=True),  # host:pid:random
    Column("audit_seen", Integer, nullable=False),  # every change up to this audit id is answerable
    Column("pending", Integer, nullable=False),  # entries changed and not yet answerable
    Column("done", Integer, nullable=False),  # of the batch being indexed now
    Column("total", Integer, nullable=False),
    Column("oldest_pending_at", Float),  # when the oldest pending change was made
    Column("heartbeat", Float, nullable=False),
    Column("started", Float, nullable=False),
)

ALIVE_S = 20.0  # a worker silent for longer is gone (crashed or stopped)
HEARTBEAT_S = 5.0


class IndexWorkers:
    """Publish this worker's index state; read every live worker's."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def publish(self, worker: str, state: dict, started: float) -> None:
        values = {**state, "heartbeat": time.time()}
        with self.engine.begin() as conn:
            found = conn.execute(
                update(kb_index_workers).where(kb_index_workers.c.worker == worker).values(**values)
            ).rowcount
            if not found:
                conn.execute(insert(kb_index_workers).values(worker=worker, started=started, **values))

    def alive(self, now: float | None = None) -> list[dict]:
        """Workers with a recent heartbeat; rows of long-gone workers are cleared on the way."""
        now = now or time.time()
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(kb_index_workers))]
        gone = [r["worker"] for r in rows if now - r["heartbeat"] > 10 * ALIVE_S]
        if gone:
            self.forget(*gone)
        return [r for r in rows if now - r["heartbeat"] <= ALIVE_S]

    def forget(self, *workers: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(kb_index_workers).where(kb_index_workers.c.worker.in_(workers)))


def live_state(workers: list[dict], audit_id: int) -> dict:
    """Whether every live worker answers with all changes up to `audit_id`, and the slowest one's
    progress (what a person waiting for an import wants to see)."""
    behind = [w for w in workers if w["audit_seen"] < audit_id]
    slowest = min(behind, key=lambda w: (w["done"] / w["total"]) if w["total"] else 0.0, default=None)
    return {
        "live": bool(workers) and not behind,
        "workers": len(workers),
        "workers_behind": len(behind),
        "done": slowest["done"] if slowest else 0,
        "total": slowest["total"] if slowest else 0,
    }


def wait_until_live(engine: Engine, audit_id: int, on_progress=None, timeout: float = 900.0,
                    poll: float = 0.5) -> dict:
    """Wait until every live worker answers with all changes up to `audit_id`; `on_progress(state)`
    is called after every poll. Returns the last state: `live`, or `workers == 0` when no service is
    running (it indexes everything when it starts), or neither after `timeout`."""
    workers = IndexWorkers(engine)
    deadline = time.monotonic() + timeout
    while True:
        state = live_state(workers.alive(), audit_id)
        if on_progress:
            on_progress(state)
        if state["live"] or not state["workers"] or time.monotonic() >= deadline:
            return state
        time.sleep(poll)
