"""``sipscribe keys create|list|revoke``: API key administration for operators.

The CLI (``cli.py``) parses arguments and calls these functions; each opens the configured
database (migrating it if needed), does its work and returns a process exit code. ``create``
prints the secret, and only the secret, on stdout, so ``KEY=$(sipscribe keys create …)`` works;
everything meant for a person goes to stderr.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO, TypeVar

from sipscribe.config import Settings
from sipscribe.store import keys as key_store
from sipscribe.store.db import Database, init_db

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _run(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        database = await init_db(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(main())


def create(
    settings: Settings,
    tenant: str,
    scopes: Sequence[str],
    name: str,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Create a key; the secret alone on stdout, the details on stderr."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    async def work(database: Database) -> tuple[key_store.ApiKeyRecord, str]:
        async with database.session() as session:
            return await key_store.create_key(session, tenant_name=tenant, scopes=scopes, name=name)

    try:
        key, secret = _run(settings, work)
    except (key_store.ScopeError, key_store.ApiKeyError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    print(secret, file=out)
    print(
        f"created key {key.id} ({key_store.display_prefix(key)}) named {key.name!r}"
        f" for tenant {key.tenant.name!r} with scopes {', '.join(key.scopes)}",
        file=err,
    )
    print("the secret above is shown only once; store it now", file=err)
    return EXIT_OK


def list_keys(
    settings: Settings,
    *,
    tenant: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """A table of keys (never secrets): id, tenant, name, prefix, scopes, dates, status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    async def work(database: Database) -> list[key_store.ApiKeyRecord] | None:
        from sipscribe.store.tenants import get_tenant_by_name

        async with database.session() as session:
            tenant_id = None
            if tenant is not None:
                record = await get_tenant_by_name(session, name=tenant)
                if record is None:
                    return None
                tenant_id = record.id
            return await key_store.list_keys(session, tenant_id=tenant_id)

    rows = _run(settings, work)
    if rows is None:
        print(f"error: no tenant named {tenant!r}", file=err)
        return EXIT_FAILURE
    header = ("ID", "TENANT", "NAME", "PREFIX", "SCOPES", "CREATED", "LAST USED", "STATUS")
    table = [header]
    for key in rows:
        table.append(
            (
                key.id,
                key.tenant.name,
                key.name,
                key_store.display_prefix(key),
                ",".join(key.scopes),
                key.created_at.strftime("%Y-%m-%d %H:%M"),
                key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never",
                f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
    if not rows:
        print("no API keys yet; create one with 'sipscribe keys create'", file=err)
    return EXIT_OK


def revoke(
    settings: Settings,
    key_id: str,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Revoke a key by id; exit 1 if there is no such key."""
    err = stderr or sys.stderr

    async def work(database: Database) -> key_store.ApiKeyRecord | None:
        async with database.session() as session:
            return await key_store.revoke_key(session, key_id=key_id, tenant_id=None)

    key = _run(settings, work)
    if key is None:
        print(f"error: no API key with id {key_id!r}", file=err)
        return EXIT_FAILURE
    print(
        f"revoked key {key.id} ({key_store.display_prefix(key)}) of tenant {key.tenant.name!r}",
        file=err,
    )
    return EXIT_OK


async def bootstrap_admin_key(database: Database) -> str | None:
    """In a running loop: the first admin key's secret if this start created it, else None."""
    async with database.session() as session:
        created = await key_store.bootstrap_admin_key(session)
    return None if created is None else created[1]


def ensure_first_admin_key(settings: Settings) -> str | None:
    """On a database that never had a key: create tenant "default" and an admin key, and return
    its secret for the caller to print once. None on every later start."""
    return _run(settings, bootstrap_admin_key)
