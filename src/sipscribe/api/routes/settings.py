"""``/api/v2/settings``: per-tenant settings the API exposes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sipscribe.api.deps import JsonBody, Principal, SessionDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import (
    AUTH_ERRORS,
    Envelope,
    SummarySettings,
    SummarySettingsPatch,
    envelope,
    error_responses,
)
from sipscribe.store import tenants as tenant_store
from sipscribe.store.keys import Scope

router = APIRouter(prefix="/api/v2/settings", tags=["settings"])


@router.get(
    "/summary",
    response_model=Envelope[SummarySettings],
    summary="Read the tenant's summary settings",
    responses=error_responses(*AUTH_ERRORS),
)
async def read_summary_settings(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.SETTINGS_READ))],
    session: SessionDep,
) -> Envelope[SummarySettings]:
    tenant = await tenant_store.get_tenant(session, tenant_id=principal.tenant_id)
    if tenant is None:  # deleted while its key was cached in this request
        raise ApiError(404, "Tenant not found")
    return envelope(request, _out(tenant_store.TenantSettings.of(tenant)))


@router.patch(
    "/summary",
    response_model=Envelope[SummarySettings],
    summary="Change the tenant's summary settings",
    responses=error_responses(400, 415, *AUTH_ERRORS),
)
async def update_summary_settings(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.SETTINGS_WRITE))],
    session: SessionDep,
    _json: Annotated[None, JsonBody],
    body: SummarySettingsPatch,
) -> Envelope[SummarySettings]:
    changes: dict[str, object] = {}
    if "base_instructions" in body.model_fields_set:
        text = (body.base_instructions or "").strip() or None
        changes["summary_base_instructions"] = text
        changes["clear_summary_base_instructions"] = text is None
    if body.enabled is not None:
        changes["summary_enabled"] = body.enabled
    if changes:
        tenant = await tenant_store.update_tenant_settings(
            session, tenant_id=principal.tenant_id, **changes
        )
    else:
        tenant = await tenant_store.get_tenant(session, tenant_id=principal.tenant_id)
    if tenant is None:
        raise ApiError(404, "Tenant not found")
    return envelope(request, _out(tenant_store.TenantSettings.of(tenant)))


def _out(current: tenant_store.TenantSettings) -> SummarySettings:
    return SummarySettings(
        base_instructions=current.summary_base_instructions, enabled=current.summary_enabled
    )
