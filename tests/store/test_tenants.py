"""Tenants and their settings."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from sipscribe.store.models import TenantRecord
from sipscribe.store.tenants import (
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    TenantSettings,
    TenantSettingsError,
    create_tenant,
    get_or_create_tenant,
    get_tenant,
    get_tenant_by_name,
    list_tenants,
    update_tenant_settings,
)


def test_settings_defaults_for_empty_json() -> None:
    settings = TenantSettings.of(TenantRecord(id="t", name="n", settings={}))
    assert settings == TenantSettings(
        rate_limit_per_minute=DEFAULT_RATE_LIMIT_PER_MINUTE,
        auto_start=True,
        summary_base_instructions=None,
    )


def test_settings_read_nested_summary() -> None:
    record = TenantRecord(
        id="t",
        name="n",
        settings={
            "rate_limit_per_minute": 5,
            "auto_start": False,
            "summary": {"base_instructions": "Be short."},
        },
    )
    assert TenantSettings.of(record) == TenantSettings(5, False, "Be short.")


def test_unusable_stored_values_fall_back_to_defaults() -> None:
    record = TenantRecord(
        id="t",
        name="n",
        settings={"rate_limit_per_minute": "lots", "auto_start": "yes", "summary": ["x"]},
    )
    assert TenantSettings.of(record) == TenantSettings()
    zero = TenantRecord(id="t", name="n", settings={"rate_limit_per_minute": 0})
    assert TenantSettings.of(zero).rate_limit_per_minute == DEFAULT_RATE_LIMIT_PER_MINUTE


async def test_create_and_find(session) -> None:
    tenant = await create_tenant(session, name="  acme ")
    assert tenant.name == "acme"
    assert (await get_tenant(session, tenant_id=tenant.id)) is tenant
    assert (await get_tenant_by_name(session, name="acme")).id == tenant.id
    assert await get_tenant_by_name(session, name="other") is None
    assert (await get_or_create_tenant(session, name="acme")).id == tenant.id
    other = await get_or_create_tenant(session, name="other")
    assert [t.name for t in await list_tenants(session)] == ["acme", "other"]
    assert other.id != tenant.id


async def test_names_are_unique(session) -> None:
    await create_tenant(session, name="acme")
    with pytest.raises(IntegrityError):
        await create_tenant(session, name="acme")


@pytest.mark.parametrize(
    ("name", "message"),
    [("   ", "tenant name is empty"), ("x" * 201, "tenant name is longer than 200 characters")],
)
async def test_bad_names(session, name: str, message: str) -> None:
    with pytest.raises(TenantSettingsError) as info:
        await create_tenant(session, name=name)
    assert str(info.value) == message


async def test_update_settings_merges(session) -> None:
    tenant = await create_tenant(session, name="acme")
    await update_tenant_settings(session, tenant_id=tenant.id, rate_limit_per_minute=30)
    await update_tenant_settings(
        session, tenant_id=tenant.id, summary_base_instructions="Mention refunds."
    )
    session.expunge_all()
    loaded = await get_tenant(session, tenant_id=tenant.id)
    assert loaded.settings == {
        "rate_limit_per_minute": 30,
        "summary": {"base_instructions": "Mention refunds."},
    }
    await update_tenant_settings(
        session, tenant_id=tenant.id, auto_start=False, clear_summary_base_instructions=True
    )
    session.expunge_all()
    loaded = await get_tenant(session, tenant_id=tenant.id)
    assert TenantSettings.of(loaded) == TenantSettings(30, False, None)


async def test_update_settings_rejects_zero_rate(session) -> None:
    tenant = await create_tenant(session, name="acme")
    with pytest.raises(TenantSettingsError) as info:
        await update_tenant_settings(session, tenant_id=tenant.id, rate_limit_per_minute=0)
    assert str(info.value) == "rate_limit_per_minute must be at least 1, got 0"


async def test_update_unknown_tenant(session) -> None:
    assert await update_tenant_settings(session, tenant_id="nope", auto_start=True) is None
