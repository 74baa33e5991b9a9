"""The API's architecture stays as issue 14 left it, checked on every run (no service, no model):

- every route in the OpenAPI document answers its 2xx with a response model (a component schema), so
  generated clients get types; a file download instead declares its media types (`responses=`);
- no handler reaches into `app.state`: the parts come as typed `Annotated` dependencies (core/deps.py and
  each package's deps.py). Only the app (kommunchatt/, which puts them there) and the dependency
  providers read it;
- no coroutine does database work itself: a store's method, `engine.connect()`/`begin()` or a statement
  goes through `core.db.run_db`, the one way (on PostgreSQL a blocking call would stop the event loop).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "knowledge", "conversations", "handoff", "learning", "insights")  # all but kommunchatt/
# Where reading app.state is the job: the dependency providers.
PROVIDERS = {
    "core/deps.py": "component(), the current user and the internal caller: the app's parts",
    "handoff/deps.py": "LiveDep: this process's handoff.live.Live",
    "core/ratelimit.py": "limits_of / Limits: the rate limiter create_app puts there",
}


# ----------------------------------------------------------------------------- response models


def _is_model(schema: dict | None) -> bool:
    """A component schema, or a list of one (what `response_model=Model` / `list[Model]` produce)."""
    if not schema:
        return False
    if "$ref" in schema:
        return True
    return schema.get("type") == "array" and "$ref" in (schema.get("items") or {})


def _is_json(media: str) -> bool:
    """A JSON document (application/json, application/problem+json); JSON Lines (x-ndjson) is a file."""
    return media == "application/json" or media.endswith("+json")


def untyped_responses(spec: dict) -> list[str]:
    """'METHOD path status' of every 2xx response without a response model. A 204 has no body; a file
    download is a response whose declared media types include no JSON."""
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content") or {}
                if content and not any(_is_json(media) for media in content):
                    continue  # a declared download (e.g. the workshop's export)
                schema = (content.get("application/json") or {}).get("schema")
                if not _is_model(schema):
                    found.append(f"{method.upper()} {path} {status}")
    return found


class _Thing(BaseModel):
    id: int


def test_the_check_sees_a_route_without_a_response_model():
    app = FastAPI()

    @app.get("/untyped")
    async def untyped() -> dict:
        return {}

    @app.get("/listed")
    async def listed() -> list[dict]:
        return []

    @app.get("/typed", response_model=_Thing)
    async def typed() -> dict:
        return {"id": 1}

    @app.get("/many", response_model=list[_Thing])
    async def many() -> list:
        return []

    @app.get("/file", response_class=Response,
             responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}})
    async def file() -> Response:
        return Response("a,b", media_type="text/csv")

    @app.delete("/gone", status_code=204)
    async def gone() -> None:
        return None

    assert sorted(untyped_responses(app.openapi())) == ["GET /listed 200", "GET /untyped 200"]


def test_every_route_answers_with_a_response_model():
    from kommunchatt.app import create_app

    spec = create_app().openapi()
    assert len(spec["paths"]) > 60  # the whole API, not a part of it
    missing = untyped_responses(spec)
    assert not missing, (
        "give these a response_model (models allow extra fields, see knowledge/models.py), or declare a file "
        "download's media types in responses=:\n" + "\n".join(missing)
    )


# ----------------------------------------------------------------------------- app.state


def app_state_uses(source: str) -> list[int]:
    """Lines where code reads `<anything>.app.state` or `app.state` (not in strings or comments)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "app") or (
                isinstance(owner, ast.Name) and owner.id == "app"
            ):
                lines.append(node.lineno)
    return lines


def test_the_check_sees_app_state_in_code_only():
    code = (
        "async def handler(request):\n"
        '    """Not from request.app.state: a docstring."""\n'
        "    # nor app.state in a comment\n"
        "    c = request.app.state.c\n"
        "    return websocket.app.state.live, app.state.limits, request.state.user\n"
    )
    assert app_state_uses(code) == [4, 5, 5]


def offenders(check, packages=PACKAGES, allowed=()) -> list[str]:
    """'path:line' of every place `check` (code -> lines) finds in the packages' modules, but `allowed`."""
    return [
        f"{path.relative_to(ROOT)}:{line}"
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT).as_posix() not in allowed
        for line in check(path.read_text(encoding="utf-8"))
    ]


def test_no_handler_reads_app_state_outside_the_app():
    offenders_found = offenders(app_state_uses, allowed=PROVIDERS)
    assert not offenders_found, (
        "take the part as a typed Annotated dependency (core/deps.py, the package's deps.py) instead of "
        "app.state:\n" + "\n".join(offenders_found)
    )
    for provider in PROVIDERS:  # the allowed list stays true: each still is where app.state is read
        assert app_state_uses((ROOT / provider).read_text(encoding="utf-8")), provider


# ----------------------------------------------------------------------------- database work in coroutines

# A call that does database work: a store's, the notices' or the users' method, opening a connection, a statement.
DB_CALL = re.compile(
    r"(^|\.)(store|notices|users|conversations)\.[a-z_]+$|(^|\.)engine\.(connect|begin)$|^conn\.execute$"
)


def blocking_db_calls(code: str) -> list[int]:
    """Lines where a coroutine calls database work directly (not awaited; a lambda or function handed to
    run_db is not a call made by the coroutine)."""
    lines = []
    for function in ast.walk(ast.parse(code)):
        if not isinstance(function, ast.AsyncFunctionDef):
            continue
        awaited = {id(node.value) for node in ast.walk(function) if isinstance(node, ast.Await)}
        stack = list(function.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(node, ast.Call) and id(node) not in awaited and DB_CALL.search(ast.unparse(node.func)):
                lines.append(node.lineno)
            stack.extend(ast.iter_child_nodes(node))
    return sorted(lines)


def test_the_check_sees_database_work_in_a_coroutine():
    code = (
        "async def handler(knowledge, engine, store):\n"
        "    entry = knowledge.store.get('default', 'x')\n"
        "    with engine.connect() as conn:\n"
        "        conn.execute(query)\n"
        "    await run_db(engine, store.get, 'id')\n"
        "    await run_db(engine, lambda: store.update('id'))\n"
        "    return await chat.conversations.get('id')\n"
        "def helper(store):\n"
        "    return store.get('id')\n"
    )
    assert blocking_db_calls(code) == [2, 3, 4]


def test_no_coroutine_does_database_work_off_run_db():
    found = offenders(blocking_db_calls, (*PACKAGES, "kommunchatt"))
    assert not found, "hand the database work to core.db.run_db:\n" + "\n".join(found)
