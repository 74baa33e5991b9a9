"""Where a citizen's personal data goes when they type it into a chat.

`messages.text` holds the masked text (core/privacy.py): what agents, webmasters, reports, logs and Rasa
see. Two tables beside it, owned here:
- `message_originals`: the citizen's own text of a message whose masking changed something, kept only
  while the chat is live so the citizen's widget shows what they typed (and a call-back form can read a
  contact they gave). Cleared when the chat ends (kommunchatt/retention.py).
- `personal_references`: keyed digests (HMAC) of the identifiers found (personnummer, phone, e-mail), so
  one citizen's conversations can be found for export or erasure without keeping the identifiers.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)

from core import privacy
from core.db import metadata

message_originals = Table(
    "message_originals",
    metadata,
    Column("message_id", Integer, ForeignKey("messages.id"), primary_key=True),
    Column("conversation_id", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_message_originals_conversation", "conversation_id"),
)

personal_references = Table(
    "personal_references",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # personnummer | phone | email
    Column("digest", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_personal_references_digest", "digest"),
    Index("ix_personal_references_conversation", "conversation_id"),
)


def privacy_key(data_dir: Path) -> bytes:
    """The key of the identifier digests: KOMMUNCHATT_PRIVACY_KEY, else a file in the data dir (0600).
    Every process of one install must use the same key (the same env var or data dir)."""
    value = os.environ.get("KOMMUNCHATT_PRIVACY_KEY")
    if not value:
        path = data_dir / "privacy-key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        value = path.read_text().strip()
    return value.encode()


class PersonalData:
    """Masks citizen text before it is stored and keeps what the citizen alone may see."""

    def __init__(self, engine: Engine, key: bytes):
        self.engine, self.key = engine, key

    @staticmethod
    def mask(text: str) -> str:
        return privacy.mask(text)

    def keep(self, conn: Connection, conversation_id: str, message_id: int, original: str, at: float) -> None:
        """In the caller's transaction: the original of a masked citizen message and its identifiers' digests."""
        conn.execute(
            insert(message_originals).values(message_id=message_id, conversation_id=conversation_id, text=original)
        )
        refs = privacy.references(self.key, original)
        if refs:
            conn.execute(
                insert(personal_references),
                [
                    {"conversation_id": conversation_id, "kind": kind, "digest": digest, "created_at": at}
                    for kind, digest in refs
                ],
            )

    def originals(self, conversation_id: str, after_id: int = 0) -> dict[int, str]:
        """{message id: the citizen's own text} of a live conversation (empty once the chat has ended)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(message_originals.c.message_id, message_originals.c.text).where(
                    message_originals.c.conversation_id == conversation_id, message_originals.c.message_id > after_id
                )
            )
            return {r.message_id: r.text for r in rows}

    def latest_contact(self, conversation_id: str, kind: str) -> str | None:
        """The last phone number or e-mail address the citizen typed in this (live) conversation."""
        for _, text in sorted(self.originals(conversation_id).items(), reverse=True):
            found = [f.value for f in privacy.find(text) if f.kind == kind]
            if found:
                return found[-1]
        return None

    def conversations_of(self, identifier: str) -> list[str]:
        """The conversations in which a personnummer, phone number or e-mail address was written."""
        ref = privacy.identifier_reference(self.key, identifier)
        if ref is None:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(personal_references.c.conversation_id)
                .distinct()
                .where(personal_references.c.kind == ref[0], personal_references.c.digest == ref[1])
            )
            return sorted(r.conversation_id for r in rows)


def forget_originals(conn: Connection, conversation_ids: list[str]) -> int:
    """Drop the citizen's own texts of ended chats (the masked transcript stays for its retention time)."""
    if not conversation_ids:
        return 0
    return conn.execute(
        delete(message_originals).where(message_originals.c.conversation_id.in_(conversation_ids))
    ).rowcount
