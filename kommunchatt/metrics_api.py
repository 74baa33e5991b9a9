"""GET /metrics: this process's (or every worker's) Prometheus metrics, and two live gauges read from
the database at each scrape, so every replica reports the same: the queue length per municipality
and the staff online. Installed by kommunchatt/observability.py."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine

from core.db import run_db
from core.deps import DbEngine
from core.metrics import NAMESPACE
from handoff.deps import QueueDep
from handoff.presence import online_user_ids
from handoff.queue import Queue
from kommunchatt.observability import registry

router = APIRouter()


class _Families:
    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return self.families


def _live_families(engine: Engine, queue: Queue) -> list:
    """Queue length per municipality and agents online, from the database: the same on every replica."""
    waiting = GaugeMetricFamily(
        f"{NAMESPACE}_queue_length", "Conversations waiting for a person", labels=["municipality"]
    )
    counts: dict[str, int] = {}
    for conv in queue.waiting():
        counts[conv["municipality"]] = counts.get(conv["municipality"], 0) + 1
    for municipality, n in sorted(counts.items()):
        waiting.add_metric([municipality], n)
    agents = GaugeMetricFamily(f"{NAMESPACE}_agents_online", "Staff with a live console connection")
    agents.add_metric([], len(online_user_ids(engine)))
    return [waiting, agents]


@router.get("/metrics", include_in_schema=False)
async def metrics(engine: DbEngine, queue: QueueDep) -> Response:
    live = CollectorRegistry(auto_describe=False)
    live.register(_Families(await run_db(engine, _live_families, engine, queue)))
    return Response(generate_latest(registry()) + generate_latest(live), media_type=CONTENT_TYPE_LATEST)
