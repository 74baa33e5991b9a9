"""Staff users (agents, webmasters, admins): hashed passwords and sessions that expire."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Collection

import bcrypt
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

# The tables live in core/user_tables.py, imported here by name for the store's statements only (not a
# re-export: insights/, tests and benches import core.user_tables). Other packages use the functions below.
from core.user_tables import auth_sessions, users

ROLES = ("agent", "webmaster", "admin")
SESSION_SECONDS = 8 * 3600  # one working day
PUBLIC_FIELDS = ("id", "username", "display_name", "role", "languages", "municipalities", "status", "max_chats")


class UserError(ValueError):
    pass


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def public(row) -> dict:
    data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    return {k: data[k] for k in PUBLIC_FIELDS}


@functools.cache
def _dummy_hash() -> bytes:
    """A hash of no one's password, made at the same cost as real ones (bcrypt's default rounds)."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt())


def available(
    conn: Connection, ids: Collection[int], *, roles: Collection[str] | None = None, active_only: bool = False
) -> list[dict]:
    """The users of `ids` whose status is available (public fields), optionally only active ones with one
    of `roles`: handoff's assignment pass and queue estimate ask with the ids of those connected now."""
    if not ids:
        return []
    query = select(users).where(users.c.id.in_(ids), users.c.status == "available")
    if active_only:
        query = query.where(users.c.active.is_(True))
    if roles is not None:
        query = query.where(users.c.role.in_(roles))
    return [public(r) for r in conn.execute(query)]


def by_ids(conn: Connection, ids: Collection[int]) -> dict[int, dict]:
    """{user id: public fields} of those of `ids` that exist."""
    if not ids:
        return {}
    return {r.id: public(r) for r in conn.execute(select(users).where(users.c.id.in_(ids)))}


def names(conn: Connection, ids: Collection[int]) -> dict[int, str]:
    """{user id: the name staff see (display name, else username)} of those of `ids` that exist."""
    if not ids:
        return {}
    rows = conn.execute(select(users.c.id, users.c.display_name, users.c.username).where(users.c.id.in_(ids)))
    return {r.id: r.display_name or r.username for r in rows}


class UserStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(
        self,
        username: str,
        password: str,
        role: str = "agent",
        languages: list[str] | None = None,
        municipalities: list[str] | None = None,
        max_chats: int = 3,
        display_name: str | None = None,
    ) -> dict:
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise UserError("the password must have at least 8 characters")
        if not username or len(username) > 100:
            raise UserError("the username must have 1 to 100 characters")
        values = {
            "username": username,
            "display_name": display_name or username,
            "password_hash": bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode(),
            "role": role,
            "languages": languages or ["sv"],
            "municipalities": municipalities or ["default"],
            "status": "offline",
            "max_chats": max_chats,
            "created_at": time.time(),
        }
        try:
            with self.engine.begin() as conn:
                values["id"] = conn.execute(insert(users).values(**values)).inserted_primary_key[0]
        except IntegrityError:
            raise UserError(f"a user named '{username}' exists already") from None
        return public(values)

    def get(self, user_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return public(row) if row else None

    def list(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [public(r) for r in conn.execute(select(users).order_by(users.c.username))]

    def update(self, user_id: int, **values) -> dict | None:
        """Change a user; a new password or disabling the user ends every session they have."""
        if not values:
            return self.get(user_id)
        revoke = "password" in values or values.get("active") is False
        if "password" in values:
            values["password_hash"] = bcrypt.hashpw(values.pop("password").encode(), bcrypt.gensalt()).decode()
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            if revoke:
                conn.execute(delete(auth_sessions).where(auth_sessions.c.user_id == user_id))
        return self.get(user_id)

    def login(self, username: str, password: str) -> tuple[str, dict] | None:
        """A new session token for valid credentials, else None (same answer for both wrong parts)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username, users.c.active.is_(True))).first()
        # An unknown user costs one bcrypt check too: the answer's timing does not tell which usernames exist.
        if not bcrypt.checkpw(password.encode(), row.password_hash.encode() if row else _dummy_hash()) or not row:
            return None
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(auth_sessions).where(auth_sessions.c.expires_at < now))
            conn.execute(
                insert(auth_sessions).values(
                    token_hash=_hash_token(token), user_id=row.id, created_at=now, expires_at=now + SESSION_SECONDS
                )
            )
        return token, public(row)

    def by_token(self, token: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(users)
                .join(auth_sessions, auth_sessions.c.user_id == users.c.id)
                .where(auth_sessions.c.token_hash == _hash_token(token), auth_sessions.c.expires_at > time.time(),
                       users.c.active.is_(True))
            ).first()
        return public(row) if row else None

    def logout(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(auth_sessions).where(auth_sessions.c.token_hash == _hash_token(token)))
