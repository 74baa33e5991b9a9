"""Shared fixtures: databases (SQLite and a fresh PostgreSQL database), and the running system."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

# Browser assertions wait up to 15 s, not Playwright's 5: on a shared 2-core machine a login (bcrypt) or a
# page's first fetch has taken longer than 5 s while a test suite and benchmarks ran beside it.
expect.set_options(timeout=15_000)

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("KOMMUNCHATT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SHARED_DATA = Path(os.environ.get("KOMMUNCHATT_DATA_DIR", ROOT / "var"))

import tests.harness  # noqa: E402,F401 - lifts the per-address rate limits for every test (tests/harness.py)


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure: no server
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


def fresh_pg_database() -> tuple[str, callable]:
    """A new, empty PostgreSQL database and a function that drops it."""
    import psycopg

    if not _pg_available():
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: start it (.ci/run does) — storage tests need it")
    name = f"kc_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each storage test runs against both databases."""
    from core.config import database_url as resolve

    if request.param == "sqlite":
        yield resolve(tmp_path)
        return
    url, drop = fresh_pg_database()
    yield resolve(tmp_path, url)
    drop()


@pytest.fixture
def engine(database_url):
    from core.db import make_engine
    from kommunchatt.schema import init_db

    engine = make_engine(database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The embedding model folder, built once (shared with `make run` through the data dir)."""
    from knowledge.embedding import build_model_folder, model_dir

    return build_model_folder(model_dir(SHARED_DATA))


@pytest.fixture(scope="session")
def plain_model_path() -> Path:
    """The model folder without the municipal adapter (knowledge/adaptation.py), built once."""
    from knowledge.embedding import MODEL_NAME, build_model_folder, model_dir

    return build_model_folder(model_dir(SHARED_DATA).with_name(f"{MODEL_NAME}-plain"), adapter=None)


@pytest.fixture(scope="session")
def embedder(model_path):
    """One embedder for every in-process retrieval test (loading it is seconds each time)."""
    from knowledge.embedding import Embedder

    return Embedder(model_path)


@pytest.fixture(scope="session")
def settings():
    """The retrieval settings as shipped: the environment's overrides left out."""
    from knowledge.settings import load_retrieval_settings

    return load_retrieval_settings(env={})
