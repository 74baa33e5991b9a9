"""One error shape for every endpoint: `{"detail": "<one readable sentence>", "errors": [{"field", "message"}]}`.

`detail` is always a string a person can read, in English (stable: API clients and tests match on it);
`errors` lists what was wrong per field (empty when the error is not about fields; an import adds
`line` and `entry`). A request that sends Accept-Language also gets `message`: the same error in
Swedish when it prefers Swedish, else English (core/error_texts.py, from the string table), which the
staff pages show. Raise an `ApiError` subclass from any layer; `install(app)` turns it, FastAPI's
validation errors, `HTTPException`s and unexpected failures into this shape, and `ERROR_RESPONSES`
documents it in OpenAPI so generated clients know it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from core.error_texts import field_text, localised, preferred_language

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One problem; an import's also name the file's `line` and `entry`."""

    model_config = ConfigDict(extra="allow")

    field: str | None = None
    message: str = Field(description="in English (stable)")
    text: str | None = Field(None, description="`message` in the body's `message` language (with Accept-Language)")


class ErrorBody(BaseModel):
    """What every error response carries."""

    detail: str = Field(description="one readable sentence in English (stable: clients may match on it)")
    errors: list[FieldError] = []
    message: str | None = Field(
        None,
        description="the error in the language the request's Accept-Language prefers (Swedish or English); "
        "only when the request sends Accept-Language (the response then says Content-Language)",
    )


ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad request",
        401: "Not logged in",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Too large",
        422: "Invalid input (per field in `errors`)",
        429: "Too many requests",
        500: "Internal error",
    }.items()
}


class ApiError(ValueError):
    """An error a caller should see as it is. A ValueError, so code that treats bad input as ValueError
    (the console's error frames) handles these too."""

    status = 400

    def __init__(self, detail: str, errors: Iterable[dict] = ()):
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)


class Invalid(ApiError):
    status = 422


class NotLoggedIn(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflicting(ApiError):
    status = 409


class TooLarge(ApiError):
    status = 413


def body(detail: str, errors: Iterable[dict] = ()) -> dict:
    return {"detail": detail, "errors": list(errors)}


def error_response(
    status: int,
    detail: str,
    errors: Iterable[dict] = (),
    headers: dict | None = None,
    request: HTTPConnection | None = None,
) -> JSONResponse:
    """The one error shape; with the `request`, `message` in the language its Accept-Language prefers."""
    content = body(detail, errors)
    language = preferred_language(request.headers.get("accept-language")) if request is not None else None
    if language:
        problems = content["errors"]
        from_fields = bool(problems) and detail == summary(problems)
        content["message"] = localised(status, detail, problems, language, from_fields)
        content["errors"] = [
            {**p, "text": field_text(p["message"], language)} if isinstance(p.get("message"), str) else p
            for p in problems
        ]
        headers = {**(headers or {}), "Content-Language": language, "Vary": "Accept-Language"}
    return JSONResponse(content, status_code=status, headers=headers)


def field_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's validation errors as {"field", "message"}: the field's dotted path without `body`/`query`."""
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            problems.append({"field": "body", "message": "the body is not valid JSON in UTF-8"})
        else:
            field = ".".join(str(p) for p in err.get("loc", ())[1:]) or "body"
            problems.append({"field": field, "message": err.get("msg", "invalid")})
    return problems


def summary(errors: list[dict]) -> str:
    """One sentence from field errors: "text: Field required; language: ..."."""
    return (
        "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in errors)
        or "the request is not valid"
    )


def _from_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail, headers = exc.detail, getattr(exc, "headers", None)
    if isinstance(detail, list):  # older code raised a list of field errors as the detail
        return error_response(exc.status_code, summary(detail), detail, headers, request)
    return error_response(exc.status_code, str(detail), (), headers, request)


def install(app: FastAPI, statuses: dict[type[Exception], int] | None = None) -> None:
    """Register the handlers; `statuses` maps other layers' exceptions (say, a conversation that does
    not exist) to a status, their message becoming `detail`."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.errors, request=request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        return error_response(422, summary(errors), errors, request=request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _from_http_exception(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # still logged by the server
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal error: the service could not complete the request", request=request)

    for kind, status in (statuses or {}).items():
        app.add_exception_handler(kind, _status_handler(status))


def _status_handler(status: int):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return error_response(status, str(exc.args[0] if exc.args else exc), request=request)

    return handler
