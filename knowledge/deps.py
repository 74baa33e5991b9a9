"""Typed FastAPI dependencies of the knowledge package (see core/deps.py for the pattern)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from core.deps import component
from knowledge.service import KnowledgeService

Knowledge = Annotated[KnowledgeService, Depends(component("knowledge"))]
