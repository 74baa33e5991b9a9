"""Typed FastAPI dependencies: who is calling, which municipalities they may act on, and the app's parts.

Handlers declare what they need as annotated parameters instead of reaching into `request.app.state`:

    async def handler(user: StaffUser, municipality: AgentMunicipality, settings: AppSettings): ...

Each package declares its own parts the same way (`knowledge.deps.Knowledge`, `conversations.deps.Chat`,
`handoff.deps.Agents`) with `component(name)`; the app puts the parts on `app.state.c` once at start-up.

The municipality scope is the one place where staff membership of a municipality is checked:
- `Scope` (the caller's `MunicipalityScope`) for code that finds the municipality itself, say a
  conversation's: `scope.check(conv["municipality"])` raises `Forbidden` (403), `scope.filter(rows)`
  keeps the rows of the caller's municipalities, `scope.ids` is None for an admin (all).
- `AgentMunicipality` / `WebmasterMunicipality` / `AdminMunicipality`: the request's `municipality`
  (query parameter, default "default"), checked for a caller with that role; `municipality_of(...)`
  builds one for another role set or a path parameter.
- `handoff.service.AgentService` checks every agent command (REST and console alike) with the user's scope.
Everyone acts on the municipalities listed on their user; an admin with "*" among them on all (global).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from core.config import Settings
from core.errors import Forbidden, NotLoggedIn
from core.events import EventHub
from core.users import UserStore

COOKIE = "kommunchatt_session"
GLOBAL = "*"  # in an admin's municipalities: every municipality


def component(name: str) -> Callable[[HTTPConnection], Any]:
    """A dependency that returns one of the app's parts (`app.state.c.<name>`), for HTTP and WebSocket routes."""

    def get(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state.c, name)

    get.__name__ = f"component_{name}"
    return get


AppSettings = Annotated[Settings, Depends(component("settings"))]
DbEngine = Annotated[Engine, Depends(component("engine"))]
Users = Annotated[UserStore, Depends(component("users"))]
Events = Annotated[EventHub, Depends(component("events"))]


def session_token(connection: HTTPConnection) -> str | None:
    """The staff session: a bearer header, the cookie, or (WebSockets, which cannot set headers) ?token=."""
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if connection.scope["type"] == "websocket" and connection.query_params.get("token"):
        return connection.query_params["token"]
    return connection.cookies.get(COOKIE)


def current_user(connection: HTTPConnection) -> dict:
    token = session_token(connection)
    user = connection.app.state.c.users.by_token(token) if token else None
    if not user:
        raise NotLoggedIn("log in first (the session is missing or has expired)")
    return user


CurrentUser = Annotated[dict, Depends(current_user)]


def require_role(*roles: str) -> Callable[[dict], dict]:
    """A dependency that lets through users with one of `roles` (admins always)."""

    def check(user: CurrentUser) -> dict:
        if user["role"] != "admin" and user["role"] not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}")
        return user

    return check


StaffUser = Annotated[dict, Depends(require_role("agent"))]
Webmaster = Annotated[dict, Depends(require_role("webmaster"))]
Admin = Annotated[dict, Depends(require_role("admin"))]


@dataclass(frozen=True)
class MunicipalityScope:
    """The municipalities a staff user works for (`ids` None: an admin, all of them)."""

    ids: frozenset[str] | None

    @classmethod
    def of(cls, user: dict) -> MunicipalityScope:
        """Everyone works for the municipalities listed on their user; only an admin with "*" among them
        (a global admin: the install's operator) for all of them."""
        listed = frozenset(user.get("municipalities") or [])
        return cls(None if user["role"] == "admin" and GLOBAL in listed else listed - {GLOBAL})

    def allows(self, municipality: str | None) -> bool:
        return self.ids is None or municipality in self.ids

    def check(self, municipality: str) -> str:
        """The municipality, if the user works for it; else Forbidden (403)."""
        if not self.allows(municipality):
            raise Forbidden(f"you do not work for the municipality '{municipality}'")
        return municipality

    def shares(self, person: dict) -> bool:
        """Whether a staff user (a row with `municipalities`) works for one of these municipalities: a colleague."""
        return self.ids is None or bool(self.ids & set(person.get("municipalities") or []))

    def covers(self, municipalities: Iterable[str]) -> bool:
        """Whether every one of `municipalities` is in scope ("*" only for a global admin)."""
        return self.ids is None or all(m in self.ids for m in municipalities)

    def filter(self, rows: Iterable[dict], key: str = "municipality") -> list[dict]:
        """The rows of the user's municipalities."""
        return [row for row in rows if self.allows(row.get(key))]


def scope_of(user: CurrentUser) -> MunicipalityScope:
    return MunicipalityScope.of(user)


Scope = Annotated[MunicipalityScope, Depends(scope_of)]


def municipality_of(*roles: str, in_path: bool = False) -> Callable[..., str]:
    """A dependency: the municipality the request acts on (`municipality` in the query, default "default",
    or in the path), checked against the caller's scope, for a caller with one of `roles`."""
    role = require_role(*roles)

    if in_path:

        def from_path(municipality: Annotated[str, Path()], user: dict = Depends(role)) -> str:
            return MunicipalityScope.of(user).check(municipality)

        return from_path

    def from_query(
        user: dict = Depends(role), municipality: Annotated[str, Query(description="the municipality's id")] = "default"
    ) -> str:
        return MunicipalityScope.of(user).check(municipality)

    return from_query


AgentMunicipality = Annotated[str, Depends(municipality_of("agent"))]
WebmasterMunicipality = Annotated[str, Depends(municipality_of("webmaster"))]
AdminMunicipality = Annotated[str, Depends(municipality_of("admin"))]


def check_municipality(user: dict, municipality: str) -> str:
    """Staff work only on the municipalities they belong to (admins on all): `MunicipalityScope.check`."""
    return MunicipalityScope.of(user).check(municipality)


def internal_caller(connection: HTTPConnection, x_internal_token: str = Header(default="")) -> None:
    """The action server: the shared secret in X-Internal-Token."""
    expected = connection.app.state.c.settings.internal_token
    if not hmac.compare_digest(x_internal_token.encode(), expected.encode()):
        raise Forbidden("internal endpoints need the X-Internal-Token header")
