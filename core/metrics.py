"""Prometheus metric objects, here in core/ so every layer can record without importing the app.

Metric names (the Grafana dashboard and alerts use exactly these; `/metrics` on the service, and
`/metrics` on the action server for the `kommunchatt_action_*` ones):

HTTP (prometheus-fastapi-instrumentator, by route template, never by raw path):
- `kommunchatt_http_requests_total{handler,method,status}`          counter
- `kommunchatt_http_request_duration_seconds{handler,method}`       histogram
- `kommunchatt_http_request_duration_highr_seconds`                  histogram (all routes, fine buckets)

Bot turns (one citizen message through the dialogue; recorded by conversations/service.py):
- `kommunchatt_turn_seconds{part}`  histogram; part = `total` (the service's whole turn),
  `rasa` (the call to Rasa, which includes the action server; in a direct turn Rasa's NLU and the
  answer), `service` (total minus rasa)
- `kommunchatt_bot_turns_total{path}`  counter; path = `direct` (a question the service answered itself
  after Rasa's NLU alone, conversations/direct.py) or `rasa` (Rasa's whole turn)
- `kommunchatt_action_seconds{action}`  histogram, on the ACTION SERVER's /metrics: time in our
  custom actions, so Rasa's own share is `rasa` minus the actions'.
- `kommunchatt_action_errors_total{action}`  counter, on the action server: an action that raised.

Answers (recorded by the `/api/v1/answer` route the actions call):
- `kommunchatt_answer_decisions_total{decision,band}`  counter; decision = answer | clarify | handoff,
  band = the confidence's tenth ("0.0" .. "0.9"), so a drift in confidence shows before wrong answers do.
- `kommunchatt_answer_prefetch_total{outcome}`  counter: answers the service started while Rasa read
  the message (knowledge/prefetch.py); outcome = `taken` by the action's request, or `unused`.

Handoff:
- `kommunchatt_queue_length{municipality}`   gauge, read from the database at scrape time (the same
  on every replica: take max() across instances, not sum())
- `kommunchatt_agents_online`                gauge, read from presence at scrape time (as above)
- `kommunchatt_queue_wait_seconds`           histogram: from joining the queue to an agent taking it
- `kommunchatt_handoffs_total{reason}`       counter: conversations queued for a person

Errors:
- `kommunchatt_errors_total{kind}`  counter; kind = `rasa_unavailable` (Rasa or the action server did
  not answer a turn: the citizen got the apology and the "talk to a person" button),
  `direct_handoff` (that button queued the citizen without Rasa), `unhandled` (a 500 from a route).

Several workers in one process group: `kommunchatt serve --workers N` sets PROMETHEUS_MULTIPROC_DIR
before the workers start, so these objects write to shared files and /metrics adds them up
(kommunchatt/observability.py). Gauges are never set by a worker: the two gauges above are computed
from the database when scraped, so they need no multi-process mode.
"""

from __future__ import annotations

import math

from prometheus_client import Counter, Histogram

NAMESPACE = "kommunchatt"

# A turn is ~0.1 s quiet and several seconds under load or when Rasa is down (its timeout is 10 s).
TURN_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0)
# Waiting for a person: seconds to an hour.
WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)

TURN_SECONDS = Histogram(
    "turn_seconds",
    "Latency of one citizen message through the dialogue, by part",
    ["part"],
    namespace=NAMESPACE,
    buckets=TURN_BUCKETS,
)
ANSWER_DECISIONS = Counter(
    "answer_decisions",
    "Answer decisions of /api/v1/answer by decision and confidence band",
    ["decision", "band"],
    namespace=NAMESPACE,
)
QUEUE_WAIT_SECONDS = Histogram(
    "queue_wait_seconds",
    "Time from joining the queue to an agent taking the conversation",
    namespace=NAMESPACE,
    buckets=WAIT_BUCKETS,
)
ANSWER_PREFETCH = Counter(
    "answer_prefetch",
    "Knowledge answers started while Rasa read the message, by outcome (taken | unused)",
    ["outcome"],
    namespace=NAMESPACE,
)
BOT_TURNS = Counter(
    "bot_turns", "Bot turns by path (direct: answered after Rasa's NLU alone | rasa)", ["path"], namespace=NAMESPACE
)
HANDOFFS = Counter("handoffs", "Conversations queued for a person, by reason", ["reason"], namespace=NAMESPACE)
ERRORS = Counter("errors", "Errors by kind (see the module docstring)", ["kind"], namespace=NAMESPACE)


def confidence_band(confidence: float) -> str:
    """The confidence's tenth as a label ("0.0" .. "0.9"): ten values, so the label set stays small."""
    if not math.isfinite(confidence):
        return "0.0"
    return f"{min(max(math.floor(confidence * 10), 0), 9) / 10:.1f}"


def record_decision(result: dict) -> None:
    band = confidence_band(float(result.get("confidence", 0)))
    ANSWER_DECISIONS.labels(result.get("decision", "unknown"), band).inc()


def record_turn(total: float, rasa: float) -> None:
    TURN_SECONDS.labels("total").observe(total)
    TURN_SECONDS.labels("rasa").observe(rasa)
    TURN_SECONDS.labels("service").observe(max(total - rasa, 0.0))
