"""Engine, sessions and automatic migrations.

``init_db(settings)`` is the one entry point the application needs: it opens the configured
database (SQLite in the data directory by default, PostgreSQL via ``postgresql+asyncpg://``),
runs ``alembic upgrade head`` programmatically from the migrations shipped inside this package,
and returns a ``Database`` holding the engine and an ``AsyncSession`` factory. Nothing depends on
the current working directory or on an ``alembic.ini`` being present.

SQLite connections get WAL journaling (readers do not block the writer, which matters when the
API reads transcripts while the pipeline appends utterances), foreign keys on (off by default in
SQLite, and the schema relies on ``ON DELETE CASCADE``), and a busy timeout so short write bursts
queue instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from sipscribe.config import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant works; it only has to be the same in every sipscribe process sharing a database,
# so two servers starting at once do not both try to create the schema.
_MIGRATION_LOCK_ID = 0x5195C12BE

SQLITE_BUSY_TIMEOUT_MS = 5000


class DatabaseUrlError(ValueError):
    """The database URL names a backend or option sipscribe cannot use."""


@dataclass
class Database:
    """An open database: the engine plus the session factory every store function is given."""

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that is closed (and rolled back if uncommitted) on exit."""
        async with self.sessionmaker() as session:
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def normalise_url(url: str) -> str:
    """Map a database URL onto the async driver sipscribe uses for its backend.

    ``sqlite://…`` becomes ``sqlite+aiosqlite://…`` and ``postgresql://…`` (or ``postgres://``)
    becomes ``postgresql+asyncpg://…``; other backends raise ``DatabaseUrlError``.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"database URL {url!r} is not a valid URL") from exc
    backend = parsed.get_backend_name()
    # Only an explicit driver counts: the default one differs between SQLAlchemy versions.
    driver = parsed.drivername.partition("+")[2] or None
    if backend == "sqlite":
        if driver not in (None, "pysqlite", "aiosqlite"):
            raise DatabaseUrlError(
                f"database URL driver sqlite+{driver} is not supported; use sqlite+aiosqlite://"
            )
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        if driver not in (None, "psycopg", "psycopg2", "asyncpg"):
            raise DatabaseUrlError(
                f"database URL driver postgresql+{driver} is not supported;"
                " use postgresql+asyncpg://"
            )
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise DatabaseUrlError(
            f"database backend {backend!r} is not supported;"
            " use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url`` with the per-backend connection setup described above.

    ``schema`` (PostgreSQL only) puts every table, the Alembic version table included, in that
    schema by setting ``search_path`` on each connection; the schema must exist.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise DatabaseUrlError("database schema is only supported on PostgreSQL")
        database = parsed.database
        if not database or database == ":memory:":
            # One in-memory database only exists per connection: share that connection.
            kwargs["poolclass"] = StaticPool
            kwargs["pool_pre_ping"] = False
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    elif schema is not None:
        kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration pointing at the migrations inside the installed package.

    With ``connection`` given, ``migrations/env.py`` runs on it instead of opening its own.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade_head(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until the surrounding transaction ends: concurrent starters wait, then find the
        # schema at head and do nothing.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    command.upgrade(alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``), in one transaction."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_head)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def open_database(engine: AsyncEngine) -> Database:
    """Wrap an engine; sessions do not expire objects on commit so records stay readable."""
    return Database(
        engine=engine,
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
    )


async def init_db(
    settings: Settings, *, schema: str | None = None, migrate_schema: bool = True
) -> Database:
    """Open the database ``settings`` names and migrate it to head.

    ``schema`` defaults to ``settings.database_schema`` when the settings define one (PostgreSQL
    only). ``migrate_schema=False`` skips the upgrade, for tools that only read.
    """
    if schema is None:
        schema = getattr(settings, "database_schema", None)
    engine = create_engine(settings.resolved_database_url, schema=schema)
    try:
        if migrate_schema:
            await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    log.info("database ready", extra={"dialect": engine.dialect.name})
    return open_database(engine)
