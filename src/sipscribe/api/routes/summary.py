"""``/api/v2/calls/{id}/summary``: request, read and re-run a call's summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.api.deps import JsonBody, Principal, ServicesDep, SessionDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.jobs import combine_instructions, run_summary
from sipscribe.api.routes.calls import CallId
from sipscribe.api.schemas import (
    AUTH_ERRORS,
    Envelope,
    SummaryOut,
    SummaryRequest,
    envelope,
    error_responses,
)
from sipscribe.api.services import AppServices
from sipscribe.store import calls as call_store
from sipscribe.store import summaries as summary_store
from sipscribe.store import tenants as tenant_store
from sipscribe.store import utterances as utterance_store
from sipscribe.store.keys import Scope
from sipscribe.store.models import SummaryState, TranscriptionState

router = APIRouter(prefix="/api/v2/calls", tags=["summary"])

_JOB_ERRORS = error_responses(400, 404, 409, 415, *AUTH_ERRORS)


async def _check_transcript(session: AsyncSession, *, call_id: str, tenant_id: str) -> None:
    """404 for an unknown call, 409 unless it has a finished transcription to summarise."""
    call = await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id)
    if call is None:
        raise ApiError(404, f"No call {call_id}")
    state = call.transcription_state
    if state in (TranscriptionState.SENT_TO_RECOGNITION, TranscriptionState.RECOGNIZED):
        raise ApiError(
            409,
            f"Call {call_id} is still being transcribed; request the summary once"
            " its transcription is stored",
        )
    count = await utterance_store.count_utterances(session, call_id=call_id, tenant_id=tenant_id)
    if state != TranscriptionState.STORED and count == 0:
        raise ApiError(
            409,
            f"Call {call_id} has no transcription to summarise;"
            f" POST /api/v2/calls/{call_id}/transcription first",
        )


async def _start(
    session: AsyncSession,
    services: AppServices,
    *,
    call_id: str,
    tenant_id: str,
    instructions: str | None,
) -> SummaryOut:
    summary = await summary_store.request_summary(
        session, call_id=call_id, instructions=instructions
    )
    tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
    base = tenant_store.TenantSettings.of(tenant).summary_base_instructions if tenant else None
    services.spawn(
        run_summary(
            services,
            summary_id=summary.id,
            call_id=call_id,
            tenant_id=tenant_id,
            instructions=combine_instructions(base, instructions),
        ),
        name=f"summary-{call_id}",
    )
    return SummaryOut.of(summary)


@router.post(
    "/{call_id}/summary",
    status_code=202,
    response_model=Envelope[SummaryOut],
    summary="Summarise the call's transcription in the background",
    responses=_JOB_ERRORS,
)
async def request_summary(
    request: Request,
    call_id: CallId,
    principal: Annotated[Principal, Depends(require_scope(Scope.SUMMARY_WRITE))],
    session: SessionDep,
    services: ServicesDep,
    _json: Annotated[None, JsonBody],
    body: SummaryRequest | None = None,
) -> Envelope[SummaryOut]:
    tenant_id = principal.tenant_id
    await _check_transcript(session, call_id=call_id, tenant_id=tenant_id)
    existing = await summary_store.get_summary(session, call_id=call_id, tenant_id=tenant_id)
    if existing is not None and existing.state == SummaryState.CREATED:
        raise ApiError(409, f"A summary of call {call_id} is already being made")
    data = await _start(
        session,
        services,
        call_id=call_id,
        tenant_id=tenant_id,
        instructions=body.instructions if body else None,
    )
    return envelope(request, data, status=202)


@router.get(
    "/{call_id}/summary",
    response_model=Envelope[SummaryOut],
    summary="Read the call's summary and its state",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def read_summary(
    request: Request,
    call_id: CallId,
    principal: Annotated[Principal, Depends(require_scope(Scope.SUMMARY_READ))],
    session: SessionDep,
) -> Envelope[SummaryOut]:
    tenant_id = principal.tenant_id
    summary = await summary_store.get_summary(session, call_id=call_id, tenant_id=tenant_id)
    if summary is None:
        if await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id) is None:
            raise ApiError(404, f"No call {call_id}")
        raise ApiError(404, f"Call {call_id} has no summary; POST to this URL to request one")
    return envelope(request, SummaryOut.of(summary))


@router.patch(
    "/{call_id}/summary",
    status_code=202,
    response_model=Envelope[SummaryOut],
    summary="Change the summary's instructions and make it again",
    responses=_JOB_ERRORS,
)
async def update_summary(
    request: Request,
    call_id: CallId,
    principal: Annotated[Principal, Depends(require_scope(Scope.SUMMARY_WRITE))],
    session: SessionDep,
    services: ServicesDep,
    _json: Annotated[None, JsonBody],
    body: SummaryRequest,
) -> Envelope[SummaryOut]:
    tenant_id = principal.tenant_id
    existing = await summary_store.get_summary(session, call_id=call_id, tenant_id=tenant_id)
    if existing is None:
        if await call_store.get_call(session, call_id=call_id, tenant_id=tenant_id) is None:
            raise ApiError(404, f"No call {call_id}")
        raise ApiError(404, f"Call {call_id} has no summary to change; POST to create one")
    await _check_transcript(session, call_id=call_id, tenant_id=tenant_id)
    instructions = (
        body.instructions if "instructions" in body.model_fields_set else existing.instructions
    )
    data = await _start(
        session, services, call_id=call_id, tenant_id=tenant_id, instructions=instructions
    )
    return envelope(request, data, status=202)
