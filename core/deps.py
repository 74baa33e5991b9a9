"""Who is calling: staff sessions (cookie or bearer token) and the action server's shared secret."""

from __future__ import annotations

import hmac

from fastapi import Depends, Header, HTTPException, Request

COOKIE = "kommunchatt_session"


def session_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def current_user(request: Request) -> dict:
    token = session_token(request)
    user = request.app.state.c.users.by_token(token) if token else None
    if not user:
        raise HTTPException(401, "log in first (the session is missing or has expired)")
    return user


def require_role(*roles: str):
    """A dependency that lets through users with one of `roles` (admins always)."""

    def check(user: dict = Depends(current_user)) -> dict:
        if user["role"] != "admin" and user["role"] not in roles:
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        return user

    return check


def internal_caller(request: Request, x_internal_token: str = Header(default="")) -> None:
    expected = request.app.state.c.settings.internal_token
    if not hmac.compare_digest(x_internal_token.encode(), expected.encode()):
        raise HTTPException(403, "internal endpoints need the X-Internal-Token header")


def check_municipality(user: dict, municipality: str) -> str:
    """Staff work only on the municipalities they belong to (admins on all)."""
    if user["role"] != "admin" and municipality not in (user.get("municipalities") or []):
        raise HTTPException(403, f"you do not work for the municipality '{municipality}'")
    return municipality
