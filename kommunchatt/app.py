"""The FastAPI application: wires the stores, the knowledge service, Rasa and the live events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from conversations.rasa_client import RasaClient
from conversations.service import ChatService
from conversations.store import Conflict, ConversationStore, UnknownConversation
from core import errors
from core.config import Settings, load_settings
from core.db import WalCheckpointer, close_executor, make_engine
from core.events import EventHub
from core.users import UserStore
from handoff.queue import Queue
from handoff.service import AgentService
from insights import unanswered
from knowledge.embedding import model_dir
from knowledge.service import KnowledgeService
from knowledge.store import KnowledgeStore
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
    entry_feedback: Callable[[str], dict[str, dict[str, int]]]  # entry id -> helpful counts (insights)


def build_components(settings: Settings) -> Components:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    init_db(engine)
    knowledge = KnowledgeService(KnowledgeStore(engine), model_dir(settings.data_dir), settings.index_dir)
    conversations = ConversationStore(engine)
    queue = Queue(engine, conversations, knowledge.store)
    events = EventHub(settings.redis_url)
    rasa = RasaClient(settings.rasa_url, settings.internal_token, timeout=settings.rasa_timeout_s)
    chat = ChatService(conversations, queue, knowledge, rasa, events)
    users = UserStore(engine)
    agents = AgentService(chat, users, events, knowledge, max_message_chars=settings.max_message_chars)
    entry_feedback = functools.partial(unanswered.feedback_counts, engine)
    return Components(settings, engine, knowledge, conversations, queue, users, events, rasa, chat, agents,
                      entry_feedback)


async def _sync_knowledge(knowledge: KnowledgeService, every: float = 0.5) -> None:
    """Pick up knowledge changes made by other processes: answerable within a second."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(knowledge.sync)
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
        self.cors = CORSMiddleware(app, allow_origins=["*"], allow_methods=["GET", "POST"],
                                   allow_headers=["content-type"], allow_credentials=False, max_age=600)

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

    for path, name in {"/": "index.html", "/widget.js": "widget.js", "/agent": "agent/index.html",
                       "/admin": "admin/index.html"}.items():
        app.add_api_route(path, page(name), methods=["GET"], include_in_schema=False)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        components = build_components(settings)
        app.state.c = components
        checkpointer = WalCheckpointer(components.engine)  # SQLite: commits on the loop never sync
        checkpointer.start()
        await components.events.start()
        syncer = asyncio.create_task(_sync_knowledge(components.knowledge))
        from handoff.live import Live

        app.state.live = Live(components)  # agent consoles, assignment, grace periods
        await app.state.live.start()
        yield
        await app.state.live.stop()
        syncer.cancel()
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
        docs_url=None, redoc_url=None,  # /docs comes from a pinned package, not a CDN (kommunchatt/observability.py)
    )

    @app.exception_handler(UnknownConversation)
    async def _unknown_conversation(_request: Request, exc: UnknownConversation):
        return errors.error_response(404, f"no chat session with id '{exc.args[0]}'")

    errors.install(app, {Conflict: 409})  # one error shape: {"detail": str, "errors": [{"field", "message"}]}

    from core.languages_api import router as languages_router

    app.include_router(languages_router)  # the one language table, for the widget and the staff pages

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
    from knowledge.notices import public_router as notices_router

    app.include_router(workshop_router)
    app.include_router(insights_router)
    app.include_router(widget_router)
    app.include_router(notices_router)
    app.add_middleware(PublicCORS)  # the widget runs on the municipality's own site (another origin)

    _mount_web(app)

    from kommunchatt import observability
    from kommunchatt.health import router as health_router

    app.include_router(health_router)
    observability.install(app)  # /metrics, request ids in logs, /docs without a CDN

    return app
