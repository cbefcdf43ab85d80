"""Engine setup, URL handling and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from sipscribe.config import Settings
from sipscribe.store.db import (
    DatabaseUrlError,
    alembic_config,
    create_engine,
    current_revision,
    init_db,
    migrate,
    normalise_url,
)
from sipscribe.store.models import Base

from .backends import create_schema, drop_schema, new_schema_name, run_sync

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://u@h/d",
            "database backend 'mysql' is not supported;"
            " use sqlite+aiosqlite:// or postgresql+asyncpg://",
        ),
        (
            "postgresql+pg8000://u@h/d",
            "database URL driver postgresql+pg8000 is not supported; use postgresql+asyncpg://",
        ),
        ("not a url", "database URL 'not a url' is not a valid URL"),
    ],
)
def test_normalise_url_rejects(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        normalise_url(url)
    assert str(info.value) == message


def test_schema_is_postgresql_only(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        create_engine(f"sqlite:///{tmp_path}/x.db", schema="s")
    assert str(info.value) == "database schema is only supported on PostgreSQL"


async def test_sqlite_connection_pragmas(tmp_path: Path) -> None:
    database = await init_db(Settings(data_dir=tmp_path / "nested" / "data"))
    try:
        async with database.engine.connect() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
            foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
        assert (journal, foreign_keys, timeout) == ("wal", 1, 5000)
        assert (tmp_path / "nested" / "data" / "sipscribe.db").exists()
    finally:
        await database.dispose()


async def test_in_memory_sqlite_keeps_one_database() -> None:
    database = await init_db(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    try:
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"calls", "utterances", "api_keys"} <= tables
    finally:
        await database.dispose()


async def test_migrations_do_not_depend_on_working_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    previous = Path.cwd()
    os.chdir(elsewhere)
    try:
        database = await init_db(Settings(data_dir=tmp_path / "data"))
        try:
            assert await current_revision(database.engine) == HEAD
        finally:
            await database.dispose()
    finally:
        os.chdir(previous)
    assert list(elsewhere.iterdir()) == []


def _diff(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def _fresh_upgrade_and_diff(settings: Settings, schema: str | None) -> list:
    engine = create_engine(settings.resolved_database_url, schema=schema)
    try:
        assert await current_revision(engine) is None
        await migrate(engine)
        assert await current_revision(engine) == HEAD
        await migrate(engine)  # at head already: nothing to do, no error
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await connection.run_sync(_diff)
        assert tables == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
        return diff
    finally:
        await engine.dispose()


async def test_upgrade_from_empty_sqlite_matches_models(tmp_path: Path) -> None:
    diff = await _fresh_upgrade_and_diff(Settings(data_dir=tmp_path), None)
    assert diff == []


async def test_upgrade_from_empty_postgresql_matches_models(postgres_url: str) -> None:
    schema = new_schema_name()
    run_sync(create_schema(postgres_url, schema))
    try:
        diff = await _fresh_upgrade_and_diff(Settings(database_url=postgres_url), schema)
        assert diff == []
    finally:
        run_sync(drop_schema(postgres_url, schema))


async def test_init_db_on_each_backend_is_at_head(database) -> None:
    assert await current_revision(database.engine) == HEAD
    async with database.session() as session:
        assert (await session.execute(text("select count(*) from calls"))).scalar_one() == 0


async def test_foreign_keys_are_enforced(database) -> None:
    from sqlalchemy.exc import IntegrityError

    from sipscribe.store.calls import create_call

    async with database.session() as session:
        with pytest.raises(IntegrityError):
            await create_call(session, tenant_id="no-such-tenant", source="upload")
