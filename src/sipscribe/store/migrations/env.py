"""Alembic environment for sipscribe.

Normally run by ``sipscribe.store.db.migrate``, which passes an open connection in
``config.attributes["connection"]``. For developers generating a new revision, it also runs from
the command line with ``alembic -c src/sipscribe/store/alembic.ini revision --autogenerate -m …``;
the database is then the one sipscribe's settings (``SIPSCRIBE_DATABASE_URL``, data dir) name.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from sipscribe.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_on_connection(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from sipscribe.config import load_settings

    return load_settings().resolved_database_url


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    from sipscribe.store.db import create_engine

    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on_connection)
            await connection.commit()
    finally:
        await engine.dispose()


_connection = config.attributes.get("connection")
if context.is_offline_mode():
    run_offline()
elif _connection is not None:
    run_on_connection(_connection)
else:
    asyncio.run(run_online())
