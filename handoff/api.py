"""HTTP API for staff: logging in, and the agent queue."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel

from kommunchatt.auth import COOKIE, current_user, require_role, session_token

router = APIRouter(prefix="/api/v1", tags=["handoff"])


class Login(BaseModel):
    username: str
    password: str


@router.post("/auth/login")
async def login(request: Request, body: Login, response: Response) -> dict:
    result = request.app.state.c.users.login(body.username, body.password)
    if not result:
        raise HTTPException(401, "wrong username or password")
    token, user = result
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=8 * 3600)
    return {"token": token, "user": user}


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, response: Response) -> None:
    token = session_token(request)
    if token:
        request.app.state.c.users.logout(token)
    response.delete_cookie(COOKIE)


@router.get("/auth/me")
async def me(user: dict = Depends(current_user)) -> dict:
    return user


@router.get("/handoff/queue")
async def queue(request: Request, _user=Depends(require_role("agent"))) -> list[dict]:
    """Waiting conversations, longest waiting first, with reason, language, topic and municipality."""
    c = request.app.state.c
    return [
        {
            "session_id": conv["id"],
            "municipality": conv["municipality"],
            "language": conv["language"],
            "reason": conv["handoff_reason"],
            "topic": conv["topic"],
            "queued_at": conv["queued_at"],
            "position": index,
        }
        for index, conv in enumerate(c.queue.waiting(), start=1)
    ]
