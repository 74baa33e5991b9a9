"""Typed FastAPI dependencies of the knowledge package (see core/deps.py for the pattern)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from core.deps import component
from knowledge.notices import NoticeStore
from knowledge.service import KnowledgeService

Knowledge = Annotated[KnowledgeService, Depends(component("knowledge"))]


def notice_store(knowledge: Knowledge) -> NoticeStore:
    """The disruption notices, kept by the knowledge service (it puts a matching one first in answers)."""
    return knowledge.notices


Notices = Annotated[NoticeStore, Depends(notice_store)]
