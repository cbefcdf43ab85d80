"""Database backends for the store and API tests: every test using ``database`` runs twice,
on SQLite (a fresh copy of a migrated file per test) and on PostgreSQL (127.0.0.1:5432,
database ``test``).

PostgreSQL runs use a schema of their own, created and migrated once per test session and
dropped at its end, and every table is emptied before each test, so runs can repeat and can
run beside other runs on the same server. ``SIPSCRIBE_TEST_PG_URL`` overrides the server URL;
the default tries the users ``postgres`` then ``root`` (trust auth). When no server answers,
the PostgreSQL parameters skip with the reason.

The conftests of ``tests/store`` and ``tests/api`` load this file by path and re-export its
fixtures (the two test folders are separate packages).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from sipscribe.config import Settings
from sipscribe.store.db import Database, create_engine, init_db
from sipscribe.store.models import Base

T = TypeVar("T")

PG_CANDIDATES = (
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "postgresql+asyncpg://root@127.0.0.1:5432/test",
)
PG_CONNECT_TIMEOUT = 3.0
BACKENDS = ("sqlite", "postgresql")


def run_sync(job: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even if a loop runs in this thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job).result(timeout=60)


async def _can_connect(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with asyncio.timeout(PG_CONNECT_TIMEOUT), engine.connect() as connection:
            await connection.execute(text("select 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


def find_postgres() -> tuple[str | None, str]:
    """A reachable PostgreSQL URL, or None and why none was."""
    configured = os.environ.get("SIPSCRIBE_TEST_PG_URL")
    candidates = (configured,) if configured else PG_CANDIDATES
    failures = []
    for url in candidates:
        problem = run_sync(_can_connect(url))
        if problem is None:
            return url, ""
        failures.append(f"{url}: {problem}")
    return None, "PostgreSQL not reachable (" + "; ".join(failures) + ")"


async def create_schema(url: str, schema: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await engine.dispose()


async def drop_schema(url: str, schema: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


def new_schema_name() -> str:
    return f"sipscribe_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server URL; skips the test when there is none."""
    url, reason = find_postgres()
    if url is None:
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A schema for this test session, migrated to head once."""
    schema = new_schema_name()
    run_sync(create_schema(postgres_url, schema))

    async def migrate() -> None:
        database = await init_db(Settings(database_url=postgres_url), schema=schema)
        await database.dispose()

    try:
        run_sync(migrate())
        yield schema
    finally:
        run_sync(drop_schema(postgres_url, schema))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once; each test starts from a copy."""
    data_dir = tmp_path_factory.mktemp("sqlite-template")

    async def migrate() -> None:
        database = await init_db(Settings(data_dir=data_dir))
        await database.dispose()  # checkpoints the WAL: everything is in the main file

    run_sync(migrate())
    return data_dir / "sipscribe.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass(frozen=True)
class DbTarget:
    """Where a test's database lives: settings for ``init_db`` and, on PostgreSQL, the schema."""

    backend: str
    settings: Settings
    schema: str | None


@pytest.fixture
def db_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> DbTarget:
    """The test's database on ``backend``; the data dir is the test's tmp dir."""
    data_dir = tmp_path / "data"
    if backend == "sqlite":
        data_dir.mkdir(parents=True)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), data_dir / "sipscribe.db")
        return DbTarget(backend, Settings(data_dir=data_dir), None)
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("pg_schema")
    return DbTarget(backend, Settings(data_dir=data_dir, database_url=url), schema)


@pytest.fixture
def db_settings(db_target: DbTarget) -> Settings:
    return db_target.settings


async def empty_all_tables(database: Database) -> None:
    """DELETE every row, children first (much faster than TRUNCATE on tiny tables)."""
    async with database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
async def database(db_target: DbTarget) -> AsyncIterator[Database]:
    """An open, migrated, empty database on the test's backend."""
    if db_target.backend == "sqlite":
        db = await init_db(db_target.settings)
    else:
        # pg_schema migrated this schema once for the session; here it only needs emptying.
        db = await init_db(db_target.settings, schema=db_target.schema, migrate_schema=False)
        await empty_all_tables(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def session(database: Database) -> AsyncIterator[Any]:
    async with database.session() as s:
        yield s
