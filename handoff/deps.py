"""Typed FastAPI dependencies of the handoff package (see core/deps.py for the pattern)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from core.deps import component
from handoff.live import Live
from handoff.queue import Queue
from handoff.service import AgentService

Agents = Annotated[AgentService, Depends(component("agents"))]
QueueDep = Annotated[Queue, Depends(component("queue"))]


def live(connection: HTTPConnection) -> Live:
    """This process's `handoff.live.Live` (consoles, assignment passes), started with the app."""
    return connection.app.state.live


LiveDep = Annotated[Live, Depends(live)]
