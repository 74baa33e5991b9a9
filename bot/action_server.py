"""The action server: rasa_sdk's app, on localhost unless told otherwise, answering only Rasa.

`rasa run actions` binds every interface and lets anyone who reaches the port run the actions
(which can queue conversations and leave call-backs through the service). Here:
- the interface is ACTIONS_INTERFACE (default 127.0.0.1; a container sets 0.0.0.0 and relies on
  its network policy), the port ACTIONS_PORT (5055);
- `/webhook` needs the header X-Internal-Token with the secret shared with Rasa and the service
  (bot/endpoints.yml sends it; KOMMUNCHATT_INTERNAL_TOKEN or KOMMUNCHATT_INTERNAL_TOKEN_FILE);
- `/metrics` has `kommunchatt_action_seconds{action}` and `kommunchatt_action_errors_total{action}`
  (Prometheus; names listed in core/metrics.py), the actions' share of a bot turn.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from rasa_sdk import endpoint
from sanic import response

from bot.server import internal_token

ACTION_SECONDS = Histogram(
    "kommunchatt_action_seconds",
    "Time in one custom action, by action",
    ["action"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ACTION_ERRORS = Counter("kommunchatt_action_errors", "Custom actions that failed, by action", ["action"])
PROTECTED = ("/webhook", "/actions")


def create_app(token: str):
    app = endpoint.create_app("actions", cors_origins=[])

    @app.middleware("request")
    async def _guard(request):
        if request.path in PROTECTED:
            given = request.headers.get("x-internal-token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return response.json({"error": "the action server answers Rasa only (X-Internal-Token)"}, status=401)
        request.ctx.started = time.perf_counter()
        return None

    @app.middleware("response")
    async def _measure(request, resp):
        started = getattr(request.ctx, "started", None)
        if request.path != "/webhook" or started is None:
            return
        action = str((request.json or {}).get("next_action") or "unknown") if resp.status != 404 else "unknown"
        ACTION_SECONDS.labels(action).observe(time.perf_counter() - started)
        if resp.status >= 500:
            ACTION_ERRORS.labels(action).inc()

    @app.get("/metrics")
    async def _metrics(_request):
        return response.raw(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(internal_token())
    app.run(
        host=os.environ.get("ACTIONS_INTERFACE", "127.0.0.1"),
        port=int(os.environ.get("ACTIONS_PORT", "5055")),
        workers=1,
        access_log=False,
        motd=False,
    )


if __name__ == "__main__":
    main()
