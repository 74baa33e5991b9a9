"""Faults a caller should hear about clearly: a database lock held elsewhere is a 503 with Retry-After
after at most `core.db.LOCK_WAIT_S` seconds, never a hang or a 500; a number the database cannot hold is a
422."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as SqlTimeout

from core.db import is_locked
from core.errors import error_response

log = logging.getLogger(__name__)
RETRY_AFTER_S = 2


def install(app: FastAPI) -> None:
    async def database_busy(request: Request, exc: Exception) -> JSONResponse:
        if not is_locked(exc):
            log.error("database error", exc_info=exc)
            return error_response(500, "internal error: the service could not complete the request", request=request)
        log.warning("database busy: %s", type(exc).__name__)
        return error_response(503, "the database is busy right now; try again in a moment",
                              headers={"Retry-After": str(RETRY_AFTER_S)}, request=request)

    async def out_of_range(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, StatementError) and not isinstance(exc.orig, (OverflowError, ValueError)) \
                and not isinstance(exc, DataError):
            log.error("database error", exc_info=exc)
            return error_response(500, "internal error: the service could not complete the request", request=request)
        return error_response(422, "a value is out of range for the database (a number too large?)", request=request)

    app.add_exception_handler(OperationalError, database_busy)
    app.add_exception_handler(SqlTimeout, database_busy)
    # A number beyond 64 bits in a path or query (SQLite: OverflowError; PostgreSQL: a DataError) is bad input.
    app.add_exception_handler(OverflowError, out_of_range)
    app.add_exception_handler(DataError, out_of_range)
    app.add_exception_handler(StatementError, out_of_range)
