"""Typed FastAPI dependencies of the conversations package (see core/deps.py for the pattern)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from conversations.personal_data import PersonalData
from conversations.service import ChatService
from conversations.store import ConversationStore
from core.deps import component

Chat = Annotated[ChatService, Depends(component("chat"))]
Conversations = Annotated[ConversationStore, Depends(component("conversations"))]
Personal = Annotated[PersonalData | None, Depends(component("personal"))]
