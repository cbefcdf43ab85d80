"""Tenants and their settings.

A tenant's settings live in one JSON column with this layout::

    {"rate_limit_per_minute": 600, "auto_start": true,
     "summary": {"base_instructions": "Focus on billing questions."}}

Absent keys mean "use the default" so that new settings need no data migration; ``TenantSettings``
is the typed read of that column with defaults applied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import TenantRecord

DEFAULT_RATE_LIMIT_PER_MINUTE = 600
DEFAULT_TENANT_NAME = "default"
MAX_TENANT_NAME_LENGTH = 200


class TenantSettingsError(ValueError):
    """A tenant setting has a value we cannot store."""


@dataclass(frozen=True)
class TenantSettings:
    """Typed view of ``TenantRecord.settings`` with defaults filled in."""

    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    auto_start: bool = True
    summary_base_instructions: str | None = None
    #: Summarise every call when it ends (the completion bundle then waits for it).
    summary_enabled: bool = False

    @classmethod
    def of(cls, tenant: TenantRecord) -> TenantSettings:
        raw = tenant.settings if isinstance(tenant.settings, dict) else {}
        nested = raw.get("summary")
        summary: dict[str, Any] = nested if isinstance(nested, dict) else {}
        rate = raw.get("rate_limit_per_minute")
        # A hand-edited row must not lock a tenant out: unusable values fall back to defaults.
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
            rate = DEFAULT_RATE_LIMIT_PER_MINUTE
        auto_start = raw.get("auto_start")
        instructions = summary.get("base_instructions")
        return cls(
            rate_limit_per_minute=rate,
            auto_start=auto_start if isinstance(auto_start, bool) else True,
            summary_base_instructions=instructions if isinstance(instructions, str) else None,
            summary_enabled=summary.get("enabled") is True,
        )


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise TenantSettingsError("tenant name is empty")
    if len(cleaned) > MAX_TENANT_NAME_LENGTH:
        raise TenantSettingsError(f"tenant name is longer than {MAX_TENANT_NAME_LENGTH} characters")
    return cleaned


async def create_tenant(
    session: AsyncSession, *, name: str, settings: dict[str, Any] | None = None
) -> TenantRecord:
    """Create and commit a tenant; names are unique (IntegrityError on a duplicate)."""
    tenant = TenantRecord(id=str(uuid.uuid4()), name=_check_name(name), settings=settings or {})
    session.add(tenant)
    await session.commit()
    return tenant


async def get_tenant(session: AsyncSession, *, tenant_id: str) -> TenantRecord | None:
    return await session.get(TenantRecord, tenant_id)


async def get_tenant_by_name(session: AsyncSession, *, name: str) -> TenantRecord | None:
    result = await session.execute(select(TenantRecord).where(TenantRecord.name == name.strip()))
    return result.scalar_one_or_none()


async def get_or_create_tenant(session: AsyncSession, *, name: str) -> TenantRecord:
    """The tenant called ``name``, created if missing (safe against a concurrent creator)."""
    existing = await get_tenant_by_name(session, name=name)
    if existing is not None:
        return existing
    try:
        return await create_tenant(session, name=name)
    except IntegrityError:
        await session.rollback()
        existing = await get_tenant_by_name(session, name=name)
        if existing is None:
            raise
        return existing


async def list_tenants(session: AsyncSession) -> list[TenantRecord]:
    result = await session.execute(select(TenantRecord).order_by(TenantRecord.name))
    return list(result.scalars())


async def update_tenant_settings(
    session: AsyncSession,
    *,
    tenant_id: str,
    rate_limit_per_minute: int | None = None,
    auto_start: bool | None = None,
    summary_base_instructions: str | None = None,
    clear_summary_base_instructions: bool = False,
    summary_enabled: bool | None = None,
) -> TenantRecord | None:
    """Change the given settings (None leaves one as it is) and commit; None if no such tenant.

    ``clear_summary_base_instructions`` removes the base instructions, since None cannot say so.
    """
    tenant = await session.get(
        TenantRecord, tenant_id, with_for_update=True, populate_existing=True
    )
    if tenant is None:
        return None
    settings = dict(tenant.settings or {})
    if rate_limit_per_minute is not None:
        if rate_limit_per_minute < 1:
            raise TenantSettingsError(
                f"rate_limit_per_minute must be at least 1, got {rate_limit_per_minute}"
            )
        settings["rate_limit_per_minute"] = rate_limit_per_minute
    if auto_start is not None:
        settings["auto_start"] = auto_start
    if clear_summary_base_instructions or summary_base_instructions is not None:
        summary = dict(settings.get("summary") or {})
        if clear_summary_base_instructions:
            summary.pop("base_instructions", None)
        else:
            summary["base_instructions"] = summary_base_instructions
        settings["summary"] = summary
    if summary_enabled is not None:
        settings["summary"] = {**(settings.get("summary") or {}), "enabled": summary_enabled}
    # A new dict so SQLAlchemy sees the JSON column change.
    tenant.settings = settings
    await session.commit()
    return tenant
