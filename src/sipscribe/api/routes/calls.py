"""``/api/v2/calls``: list and read calls, upload a recording as a new call."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BeforeValidator

from sipscribe.api.deps import (
    OptionsDep,
    Principal,
    ServicesDep,
    SessionDep,
    SettingsDep,
    require_scope,
)
from sipscribe.api.errors import ApiError
from sipscribe.api.jobs import run_transcription
from sipscribe.api.schemas import (
    AUTH_ERRORS,
    CallOut,
    CallPageOut,
    Envelope,
    envelope,
    error_responses,
)
from sipscribe.api.upload_form import read_audio_form, save_upload, text_field
from sipscribe.store import calls as call_store
from sipscribe.store.keys import Scope
from sipscribe.store.models import CallDirection, CallSource, CallState, Role, TranscriptionState

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v2/calls", tags=["calls"])

CallId = Annotated[str, PathParam(min_length=1, max_length=64, description="The call's id")]

MAX_EXTERNAL_ID = 255

UPLOAD_BODY_SCHEMA: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The recording: WAV, MP3, OGG/Opus, FLAC, M4A, WebM…",
                    },
                    "external_id": {
                        "type": "string",
                        "maxLength": MAX_EXTERNAL_ID,
                        "description": "Your own identifier for the call",
                    },
                    "roles": {
                        "type": "string",
                        "description": "Role of each channel in order, e.g. 'agent,customer'",
                    },
                    "direction": {"type": "string", "enum": [d.value for d in CallDirection]},
                },
            }
        }
    },
}


_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?")


def _iso_only(value: Any) -> Any:
    # pydantic would read a bare number as a Unix time; the API promises ISO 8601 only.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("must be an ISO 8601 date-time such as 2026-04-01T09:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


def _as_utc(value: datetime | None) -> datetime | None:
    """Query times without an offset are taken as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.get(
    "",
    response_model=Envelope[CallPageOut],
    summary="List calls, newest first",
    responses=error_responses(400, *AUTH_ERRORS),
)
async def list_calls(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.CALLS_READ))],
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=call_store.MAX_PAGE_SIZE)] = call_store.DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    started_from: Annotated[
        IsoDateTime | None,
        Query(alias="from", description="Calls started at or after (ISO 8601)"),
    ] = None,
    started_to: Annotated[
        IsoDateTime | None, Query(alias="to", description="Calls started before (ISO 8601)")
    ] = None,
    state: CallState | None = None,
    external_id: Annotated[str | None, Query(max_length=MAX_EXTERNAL_ID)] = None,
) -> Envelope[CallPageOut]:
    try:
        page = await call_store.list_calls(
            session,
            tenant_id=principal.tenant_id,
            limit=limit,
            cursor=cursor,
            started_from=_as_utc(started_from),
            started_to=_as_utc(started_to),
            state=state,
            external_id=external_id,
        )
    except call_store.CallQueryError as exc:
        raise ApiError(400, str(exc)) from None
    data = CallPageOut(items=[CallOut.of(c) for c in page.items], next_cursor=page.next_cursor)
    return envelope(request, data)


@router.get(
    "/{call_id}",
    response_model=Envelope[CallOut],
    summary="Read one call",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def read_call(
    request: Request,
    call_id: CallId,
    principal: Annotated[Principal, Depends(require_scope(Scope.CALLS_READ))],
    session: SessionDep,
) -> Envelope[CallOut]:
    call = await call_store.get_call(session, call_id=call_id, tenant_id=principal.tenant_id)
    if call is None:  # another tenant's call is "not found" too
        raise ApiError(404, f"No call {call_id}")
    return envelope(request, CallOut.of(call))


def parse_roles(value: str | None) -> list[str] | None:
    """``"agent,customer"`` → ``["agent", "customer"]``; 400 on anything else."""
    if value is None or not value.strip():
        return None
    roles = [item.strip().lower() for item in value.split(",")]
    allowed = {r.value for r in Role}
    for role in roles:
        if role not in allowed:
            raise ApiError(400, f"roles: {role!r} is not 'agent' or 'customer'")
    return roles


def safe_filename(name: str | None) -> str:
    """The client's file name reduced to a harmless basename (never a path)."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:100]
    return cleaned or "upload"


@router.post(
    "",
    status_code=201,
    response_model=Envelope[CallOut],
    summary="Upload a recording; it is transcribed in the background",
    openapi_extra={"requestBody": UPLOAD_BODY_SCHEMA},
    responses=error_responses(400, 413, 415, 503, *AUTH_ERRORS),
)
async def upload_call(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.CALLS_WRITE))],
    services: ServicesDep,
    settings: SettingsDep,
    options: OptionsDep,
) -> Envelope[CallOut]:
    runner = services.transcription_runner
    database = services.database
    if runner is None or database is None:
        raise ApiError(503, "Transcription is not available on this server yet")
    form, upload = await read_audio_form(
        request, max_upload_bytes=options.max_upload_bytes, max_fields=8
    )
    try:
        external_id = text_field(form, "external_id", max_length=MAX_EXTERNAL_ID)
        roles = parse_roles(text_field(form, "roles", max_length=200))
        direction = text_field(form, "direction", max_length=16)
        if direction is not None and direction not in {d.value for d in CallDirection}:
            raise ApiError(400, f"direction: {direction!r} is not 'inbound' or 'outbound'")
        call_id = str(uuid.uuid4())
        target = (
            settings.data_dir.resolve() / "recordings" / call_id / safe_filename(upload.filename)
        )
        await asyncio.to_thread(save_upload, upload.file, target)
    finally:
        await form.close()
    decisions = [
        {"channel": i, "role": role, "evidence": "roles field of the upload"}
        for i, role in enumerate(roles or [])
    ]
    try:
        async with database.session() as session:
            created = await call_store.create_call(
                session,
                tenant_id=principal.tenant_id,
                call_id=call_id,
                source=CallSource.UPLOAD,
                state=CallState.COMPLETED,
                direction=direction,
                external_id=external_id,
                role_decisions=decisions,
                recording_path=str(target),
            )
            await call_store.set_transcription_state(
                session,
                call_id=created.id,
                tenant_id=principal.tenant_id,
                state=TranscriptionState.SENT_TO_RECOGNITION,
            )
            call = await call_store.get_call(
                session, call_id=created.id, tenant_id=principal.tenant_id
            )
            assert call is not None
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, target.parent, True)
        raise
    services.spawn(
        run_transcription(
            services, call_id=call.id, tenant_id=principal.tenant_id, path=target, roles=roles
        ),
        name=f"transcribe-{call.id}",
    )
    log.info("upload stored", extra={"call_id": call.id, "bytes": upload.size})
    return envelope(request, CallOut.of(call), status=201)
