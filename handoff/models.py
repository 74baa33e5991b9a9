"""What the staff API answers: response models for OpenAPI and generated clients.

Models allow extra fields: they document what each answer has at least, and a field added by a later
change reaches the client without touching its model first.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StaffUserOut(Open):
    id: int
    username: str
    display_name: str | None = None
    role: str
    languages: list[str] = []
    municipalities: list[str] = []
    status: str
    max_chats: int


class LoggedIn(Open):
    token: str
    user: StaffUserOut


class MessageOut(Open):
    id: int
    sender: str = Field(description="citizen | bot | agent | system | note")
    text: str
    created_at: float


class ConversationView(Open):
    id: str
    municipality: str
    language: str
    state: str = Field(description="bot | queued | agent | closed")
    reason: str | None = None
    topic: str | None = None
    queued_at: float | None = None
    assigned_at: float | None = None
    assigned_to: int | None = None
    created_at: float
    outcome: str | None = None
    csat_score: int | None = None
    messages: list[MessageOut]


class QueueItem(Open):
    session_id: str
    municipality: str
    language: str
    reason: str | None = None
    topic: str | None = None
    queued_at: float | None = None
    position: int
    preview: str = ""


class Transferred(Open):
    conversation_id: str
    to: int | str = Field(description='the agent\'s id, or "queue"')


class HandedBack(Open):
    state: str
    messages: list[MessageOut]


class Closed(Open):
    state: str
    outcome: str


class Suggestions(Open):
    conversation_id: str
    message_id: int | None = None
    answers: list[dict] = []


class AgentRow(Open):
    id: int
    username: str
    display_name: str | None = None
    status: str
    online: bool
    chats: int


class CannedOut(Open):
    id: int
    municipality: str
    shortcut: str
    title: str
    texts: dict[str, str]


class TicketOut(Open):
    id: int
    municipality: str
    contact: str
    message: str
    status: str
    created_at: float


class TicketChanged(Open):
    id: int
    status: str


class OpeningHours(Open):
    opening_hours: dict | None = None
    open: bool
    opens_at: str | None = None


class Availability(Open):
    open: bool
    opens_at: str | None = None
    waiting: int
    estimated_wait_seconds: int | None = None


class Rated(Open):
    score: int
    comment: str | None = None


class QueueEntry(Open):
    """The answer to the action server's handoff: queued (with the place) or closed (with when it opens)."""

    state: str
    open: bool
    opens_at: str | None = None
    position: int | None = None
    estimated_wait_seconds: int | None = None


class TicketCreated(Open):
    ticket_id: int


class LanguageChanged(Open):
    language: str


class Recorded(Open):
    """Stored; nothing to tell (the action server's feedback call answers `{}`)."""
