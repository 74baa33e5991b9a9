"""The FastAPI application: wires the stores, the knowledge service, Rasa and the live events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from threadpoolctl import threadpool_limits

from conversations.personal_data import PersonalData, privacy_key
from conversations.rasa_client import RasaClient
from conversations.service import ChatService
from conversations.store import Conflict, ConversationStore, UnknownConversation
from conversations.widget import Topics
from core import errors, faults
from core.config import Settings, load_settings
from core.db import WalCheckpointer, close_executor, make_engine
from core.events import EventHub
from core.ratelimit import RateLimits
from core.security import BodyLimit, OriginCheck, SecurityHeaders
from core.users import UserStore
from handoff.queue import Queue
from handoff.service import AgentService
from insights import unanswered
from knowledge.admin_api import MAX_IMPORT_BYTES
from knowledge.embedding import model_dir
from knowledge.service import KnowledgeService
from knowledge.store import KnowledgeStore
from kommunchatt import retention
from kommunchatt.privacy_api import public_router as privacy_public_router
from kommunchatt.privacy_api import router as privacy_router
from kommunchatt.retention import RasaTracker
from kommunchatt.schema import init_db

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    engine: Engine
    knowledge: KnowledgeService
    conversations: ConversationStore
    queue: Queue
    users: UserStore
    events: EventHub
    rasa: RasaClient
    chat: ChatService
    agents: AgentService
    topics: Topics  # the widget's top topics, cached per municipality and language (conversations/widget.py)
    entry_feedback: Callable[[str], dict[str, dict[str, int]]]  # entry id -> helpful counts (insights)
    personal: PersonalData | None = None  # masking and the citizen's own texts (conversations/personal_data.py)


def build_components(settings: Settings) -> Components:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    init_db(engine)
    knowledge = KnowledgeService(KnowledgeStore(engine), model_dir(settings.data_dir), settings.index_dir)
    conversations = ConversationStore(engine)
    queue = Queue(engine, conversations, knowledge.store)
    events = EventHub(settings.redis_url)
    rasa = RasaClient(settings.rasa_url, settings.internal_token, timeout=settings.rasa_timeout_s)
    personal = PersonalData(engine, privacy_key(settings.data_dir))
    chat = ChatService(conversations, queue, knowledge, rasa, events, personal)
    users = UserStore(engine)
    agents = AgentService(chat, users, events, knowledge, max_message_chars=settings.max_message_chars)
    entry_feedback = functools.partial(unanswered.feedback_counts, engine)
    topics = Topics(engine, knowledge.store)
    return Components(
        settings, engine, knowledge, conversations, queue, users, events, rasa, chat, agents, topics, entry_feedback,
        personal=personal,
    )


async def _sync_knowledge(knowledge: KnowledgeService, every: float = 0.5) -> None:
    """Index knowledge changes (imports, other workers' edits) off the event loop, and publish how far
    the index is (`KnowledgeService.maintain`)."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(knowledge.maintain)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            log.exception("knowledge sync failed")


WEB = Path(__file__).resolve().parent.parent / "web"


class PublicCORS:
    """CORS for the citizen widget's public routes only (any origin, never credentials): staff routes stay
    same-origin, so a page elsewhere cannot read them."""

    PREFIXES = ("/api/v1/chat/", "/api/v1/notices")

    def __init__(self, app):
        from starlette.middleware.cors import CORSMiddleware

        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.PREFIXES):
            return await self.cors(scope, receive, send)
        return await self.app(scope, receive, send)


def _mount_web(app: FastAPI) -> None:
    """The browser pages: no build step, served as files from web/."""
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    def page(name: str):
        async def serve() -> FileResponse:
            return FileResponse(WEB / name, headers={"cache-control": "no-cache"})

        return serve

    for path, name in {
        "/": "index.html",
        "/widget.js": "widget.js",
        "/agent": "agent/index.html",
        "/admin": "admin/index.html",
        "/staff": "staff/index.html",
    }.items():
        app.add_api_route(path, page(name), methods=["GET"], include_in_schema=False)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app: its parts built at start-up (`build_components`), every router, error handler and middleware.

    Long because it is the one list of what the service serves, one registration a
    line, in the order that matters (middlewares wrap in the reverse order they are added).
    """
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # One BLAS thread (KOMMUNCHATT_BLAS_THREADS): an answer's matrix products are small, and OpenBLAS's
        # second thread spun on the other core, nearly doubling an answer's CPU (19 -> 10 ms) that Rasa and the
        # other requests need when the machine is busy (issue 18, bench/README.md).
        threadpool_limits(limits=int(os.environ.get("KOMMUNCHATT_BLAS_THREADS", "1")), user_api="blas")
        components = build_components(settings)
        app.state.c = components
        checkpointer = WalCheckpointer(components.engine)  # SQLite: commits on the loop never sync
        checkpointer.start()
        await components.events.start()
        syncer = asyncio.create_task(_sync_knowledge(components.knowledge))
        from handoff.live import Live

        app.state.live = Live(components)  # agent consoles, assignment, grace periods
        await app.state.live.start()
        tracker = RasaTracker.for_install(components.engine, settings.data_dir)
        purger = asyncio.create_task(retention.run_periodically(components.engine, tracker))  # retention
        from learning import jobs as learning_jobs

        learning_tasks = learning_jobs.start(components.engine)  # routing to owners, link check, weekly digest
        yield
        for task in learning_tasks:
            task.cancel()
        purger.cancel()
        await app.state.live.stop()
        syncer.cancel()
        components.knowledge.close()
        await components.events.stop()
        await components.rasa.close()
        close_executor(components.engine)
        checkpointer.stop()
        components.engine.dispose()

    app = FastAPI(
        title="Kommunchatt",
        version="0.1.0",
        description="Citizen-service chat for Nordic municipalities: answers, chat sessions, agent queue.",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,  # every endpoint documents the one error shape (core/errors.py)
        docs_url=None,
        redoc_url=None,  # /docs comes from a pinned package, not a CDN (kommunchatt/observability.py)
    )

    @app.exception_handler(UnknownConversation)
    async def _unknown_conversation(request: Request, exc: UnknownConversation):
        return errors.error_response(404, f"no chat session with id '{exc.args[0]}'", request=request)

    errors.install(app, {Conflict: 409})  # one error shape: {"detail": str, "errors": [{"field", "message"}]}

    from core.languages_api import router as languages_router

    app.include_router(languages_router)  # the one language table, for the widget and the staff pages
    faults.install(app)  # a database lock held elsewhere: 503 within 2 s

    from conversations.api import router as chat_router
    from handoff.api import router as handoff_router
    from handoff.internal_api import router as internal_router
    from insights.api import router as insights_router
    from knowledge.api import router as knowledge_router

    app.include_router(knowledge_router)
    app.include_router(chat_router)
    app.include_router(internal_router)
    app.include_router(handoff_router)

    from knowledge.admin_api import router as workshop_router
    from knowledge.admin_api import widget_router
    from knowledge.notices_api import public_router as notices_router

    app.include_router(workshop_router)
    app.include_router(insights_router)
    app.include_router(widget_router)
    app.include_router(notices_router)
    from core.i18n_api import router as i18n_router
    from core.municipalities_api import router as municipalities_router
    from handoff.history import router as history_router
    from insights.dismissals import router as dismissals_router
    from insights.supervisor import router as supervisor_router

    app.include_router(i18n_router)
    app.include_router(municipalities_router)  # staff pages (issue 16): municipalities, history, dismissals,
    app.include_router(history_router)  # and the supervisor's live view
    app.include_router(dismissals_router)
    app.include_router(supervisor_router)
    from conversations.widget import admin_router as widget_look_router
    from conversations.widget import router as widget_config_router
    from handoff.citizen import router as citizen_moves_router

    app.include_router(widget_config_router)  # citizen UX (issue 16): the widget's look and top topics,
    app.include_router(widget_look_router)  # set per municipality by an admin,
    app.include_router(citizen_moves_router)  # and the citizen leaving the queue or ending the chat
    app.add_middleware(PublicCORS)  # the widget runs on the municipality's own site (another origin)
    app.include_router(privacy_router)  # retention, erasure, export, access log (issue 15)
    app.include_router(privacy_public_router)
    from learning.suggestions_api import router as suggestions_router

    app.include_router(suggestions_router)  # the workshop's suggestions from real traffic (issue 19)
    from learning.api import admin as owners_router
    from learning.api import router as worklist_router

    app.include_router(owners_router)  # departments, owners, link check, digest mail (issue 19)
    app.include_router(worklist_router)  # the owners' work list and weekly digest, read by the contact centre
    app.state.limits = RateLimits.from_env(settings.redis_url)  # core/ratelimit.py: 429 with Retry-After
    app.add_middleware(OriginCheck)  # cookie-authenticated writes and WebSockets only from our own pages
    app.add_middleware(BodyLimit, larger={"/api/v1/admin/import": MAX_IMPORT_BYTES})  # 413 before reading
    app.add_middleware(SecurityHeaders)  # CSP/frame-ancestors, nosniff, Referrer-Policy, HSTS behind HTTPS

    _mount_web(app)

    from kommunchatt import observability
    from kommunchatt.health import router as health_router

    app.include_router(health_router)
    observability.install(app)  # /metrics, request ids in logs, /docs without a CDN

    return app
