"""Instance-wide settings: a small key/value table for facts about this installation.

Per-tenant settings live on the tenant (``store.tenants``); this table holds what belongs to
the server itself, such as the marker that the first admin key was created.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import SettingRecord


async def get_setting(session: AsyncSession, *, key: str) -> Any | None:
    """The stored value, or None when the key was never set."""
    record = await session.get(SettingRecord, key)
    return None if record is None else record.value


async def add_setting(session: AsyncSession, *, key: str, value: Any) -> None:
    """Insert a new key and commit; raises IntegrityError if the key exists (use as a claim)."""
    session.add(SettingRecord(key=key, value=value))
    await session.commit()


async def set_setting(session: AsyncSession, *, key: str, value: Any) -> None:
    """Insert or replace a key and commit."""
    record = await session.get(SettingRecord, key)
    if record is None:
        session.add(SettingRecord(key=key, value=value))
    else:
        record.value = value
    await session.commit()


async def delete_setting(session: AsyncSession, *, key: str) -> bool:
    """Remove a key and commit; False if it was not set."""
    record = await session.get(SettingRecord, key)
    if record is None:
        return False
    await session.delete(record)
    await session.commit()
    return True
