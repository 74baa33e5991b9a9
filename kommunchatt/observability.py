"""Operations for the service: Prometheus `/metrics`, request and conversation ids in the logs (JSON
lines with KOMMUNCHATT_LOG_FORMAT=json), and `/docs` served from the pinned swagger-ui-bundle
package instead of a CDN, so the API docs work offline.

Metric names: see core/metrics.py. Logs carry ids, route templates, statuses and times, never what
a citizen or an agent wrote (the access line has the route template, not the path or query); any
personal data that still reaches a log message is masked by core/privacy.py's filter.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from prometheus_client import REGISTRY, CollectorRegistry

from core.metrics import ERRORS, NAMESPACE

LOG_FORMAT_ENV = "KOMMUNCHATT_LOG_FORMAT"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
CONVERSATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("conversation_id", default=None)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CONVERSATION_IN_PATH = re.compile(r"/(?:sessions|conversations)/([A-Za-z0-9_-]{1,64})(?:/|$)")
access_log = logging.getLogger("kommunchatt.access")


def json_logs() -> bool:
    return os.environ.get(LOG_FORMAT_ENV, "text").strip().lower() == "json"


class ContextFilter(logging.Filter):
    """Adds the current request id and conversation id to every record (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.conversation_id = CONVERSATION_ID.get()
        return True


def logging_config(json_format: bool | None = None) -> dict:
    """uvicorn's `log_config`: one handler on stderr, JSON lines or text, ids on every record."""
    json_format = json_logs() if json_format is None else json_format
    if json_format:
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(conversation_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    else:
        formatter = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # Personal data a library puts in a message (an exception quoting input) is masked (core/privacy.py).
        "filters": {"context": {"()": ContextFilter}, "mask": {"()": "core.privacy.MaskingFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["mask", "context"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # One line per request only in JSON (a log shipper's format); text logs stay quiet.
            "kommunchatt.access": {"level": "INFO" if json_format else "WARNING"},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


class RequestContext:
    """ASGI middleware: a request id (the caller's X-Request-ID if well-formed, else a new one, echoed
    in the response), the conversation id from the path, an access line, and unhandled errors counted."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        found = _CONVERSATION_IN_PATH.search(scope.get("path", ""))
        tokens = (REQUEST_ID.set(request_id), CONVERSATION_ID.set(found.group(1) if found else None))
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        except Exception:
            ERRORS.labels("unhandled").inc()
            raise
        finally:
            route = scope.get("route")
            access_log.info(
                "request",
                extra={
                    "method": scope.get("method", "WS"),
                    "route": getattr(route, "path", "unmatched"),
                    "status": status["code"] if scope["type"] == "http" else None,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            REQUEST_ID.reset(tokens[0])
            CONVERSATION_ID.reset(tokens[1])


def prepare_multiprocess_metrics(directory: Path) -> None:
    """Several uvicorn workers: each writes its metrics to files in `directory`, emptied first (the
    files of a previous run would count twice)."""
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def registry() -> CollectorRegistry:
    """This process's metrics, or every worker's when uvicorn runs several (multi-process files)."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _install_metrics(app: FastAPI) -> None:
    from prometheus_client import disable_created_metrics
    from prometheus_fastapi_instrumentator import Instrumentator

    disable_created_metrics()
    Instrumentator(excluded_handlers=["/metrics", "/health.*", "/static.*", "/docs.*"]).instrument(
        app,
        metric_namespace=NAMESPACE,
        latency_lowr_buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )

    from kommunchatt.metrics_api import router  # the app's parts, imported with the app (not by the CLI)

    app.include_router(router)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle package (FastAPI's default loads it from a CDN)."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=Path(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


def install(app: FastAPI) -> None:
    """Metrics, request context and offline docs (create the app with docs_url=None, redoc_url=None)."""
    _install_metrics(app)
    _install_docs(app)
    app.add_middleware(RequestContext)
