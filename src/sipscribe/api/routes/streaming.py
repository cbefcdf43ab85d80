"""Streaming control, the media-gateway convention: start/stop transcription of a call.

``POST /mg-autotranscribe/v1/start-streaming`` and ``.../stop-streaming`` address a live
SIPREC call by its ``guid`` (the external id picked from vendor identifiers, or the
SIP Call-ID). Errors carry the convention's codes in ``error.code``:
``400-201`` bad parameter, ``400-202`` bad combination, ``400-203`` no call with that
guid, ``409-201`` already started/stopped, ``409-202`` another request pending for the
guid, ``409-203`` BYE being processed, ``500-201`` internal.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sipscribe.api.deps import Principal, ServicesDep, require_scope
from sipscribe.api.errors import error_body, error_name, request_id_of
from sipscribe.store.keys import Scope

log = logging.getLogger(__name__)

router = APIRouter(prefix="/mg-autotranscribe/v1", tags=["streaming"])


class StreamingControl(Protocol):
    """What the recorder offers the API (``recorder.Recorder``)."""

    def find_by_guid(self, guid: str) -> Any: ...
    def recently_ended(self, guid: str) -> bool: ...
    def start_streaming(
        self, guid: str, *, media_line_order: str | None = None, language: str | None = None
    ) -> Any: ...
    async def stop_streaming(self, guid: str) -> Any: ...


class AutotranscribeParams(BaseModel):
    model_config = ConfigDict(extra="ignore")
    language: str | None = Field(default=None, pattern=r"^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$")
    detailedToken: bool = False
    audioRecordingAllowed: bool = True
    redactionOutput: Literal["redacted", "unredacted", "redacted_and_unredacted"] = "redacted"


class SiprecParams(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mediaLineOrder: Literal["CUSTOMER_FIRST", "AGENT_FIRST"] | None = None


class StartStreaming(BaseModel):
    model_config = ConfigDict(extra="ignore")
    namespace: str = Field(min_length=1, max_length=200)
    guid: str = Field(min_length=1, max_length=500)
    customerId: str | None = Field(default=None, max_length=500)
    agentId: str | None = Field(default=None, max_length=500)
    autotranscribeParams: AutotranscribeParams = Field(default_factory=AutotranscribeParams)
    siprecParams: SiprecParams = Field(default_factory=SiprecParams)


class StopStreaming(BaseModel):
    model_config = ConfigDict(extra="ignore")
    namespace: str = Field(min_length=1, max_length=200)
    guid: str = Field(min_length=1, max_length=500)


def _error(request: Request, code: str, message: str) -> JSONResponse:
    status = int(code.split("-")[0])
    body = error_body(
        status, message, request_id=request_id_of(request.scope), name=error_name(status)
    )
    body["error"]["code"] = code
    body["isOk"] = False
    return JSONResponse(body, status_code=status)


async def _parse(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    try:
        raw = json.loads(await request.body() or b"null")
    except ValueError:
        return _error(request, "400-201", "body is not valid JSON")
    if not isinstance(raw, dict):
        return _error(request, "400-201", "body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _error(request, "400-201", f"{where}: {first['msg']}")


def _control(services: Any) -> StreamingControl | None:
    return getattr(services, "streaming", None)


def _call_for(
    request: Request, control: StreamingControl, guid: str, principal: Principal
) -> Any | JSONResponse:
    call = control.find_by_guid(guid)
    if call is None or (call.tenant_id is not None and call.tenant_id != principal.tenant_id):
        if control.recently_ended(guid):
            return _error(request, "409-203", f"the call {guid} has ended (BYE processed)")
        return _error(request, "400-203", f"no active call with guid {guid}")
    return call


async def _target(
    request: Request, services: Any, principal: Principal, model: type[BaseModel]
) -> tuple[Any, StreamingControl, Any] | JSONResponse:
    """Parse the body, find the recorder and the caller's live call, or the error to send."""
    body = await _parse(request, model)
    if isinstance(body, JSONResponse):
        return body
    control = _control(services)
    if control is None:
        return _error(request, "500-201", "this server has no SIP recorder running")
    call = _call_for(request, control, body.guid, principal)  # type: ignore[attr-defined]
    if isinstance(call, JSONResponse):
        return call
    return body, control, call


def _role_streams(call: Any, with_summary: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for live in call.streams.values():
        sp = live.pipeline
        key = sp.role or f"channel{sp.channel}"
        entry: dict[str, Any] = {
            "streamId": sp.stream_id,
            "status": {"code": 1000, "description": "OK"},
        }
        if with_summary:
            stats = sp.stats()
            entry["summary"] = {
                "totalAudioBytes": sp.input_samples * 2,
                "audioDurationMs": stats["audio_ms"],
                "streamingSeconds": round((stats["audio_ms"] - stats["paused_ms"]) / 1000, 3),
                "transcripts": stats["utterances"],
            }
        out[key] = entry
    return out


@router.post("/start-streaming", summary="Start transcribing a live SIPREC call")
async def start_streaming(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.STREAMING_WRITE))],
    services: ServicesDep,
) -> JSONResponse:
    target = await _target(request, services, principal, StartStreaming)
    if isinstance(target, JSONResponse):
        return target
    body, control, call = target
    assert isinstance(body, StartStreaming)
    order = body.siprecParams.mediaLineOrder
    if order is not None and len(call.streams) != 2:
        return _error(
            request,
            "400-202",
            f"mediaLineOrder needs a call with 2 audio streams; {body.guid} has "
            f"{len(call.streams)}",
        )
    if (
        not body.autotranscribeParams.audioRecordingAllowed
        and body.autotranscribeParams.redactionOutput != "redacted"
    ):
        return _error(
            request, "400-202", "redactionOutput other than 'redacted' needs audioRecordingAllowed"
        )
    from sipscribe.recorder import StreamingError

    lang = body.autotranscribeParams.language
    try:
        control.start_streaming(
            body.guid,
            media_line_order=order,
            language=lang.split("-")[0].lower() if lang else None,
            customer_id=body.customerId,
            agent_id=body.agentId,
            redaction_output=body.autotranscribeParams.redactionOutput,
        )
    except StreamingError as exc:
        return _error(request, exc.code, exc.message)
    except Exception:
        log.exception("start-streaming %s failed", body.guid)
        return _error(request, "500-201", "internal error starting the stream")
    return JSONResponse({"isOk": True, "autotranscribeResponse": _role_streams(call, False)})


@router.post("/stop-streaming", summary="Stop transcribing a live SIPREC call")
async def stop_streaming(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.STREAMING_WRITE))],
    services: ServicesDep,
) -> JSONResponse:
    target = await _target(request, services, principal, StopStreaming)
    if isinstance(target, JSONResponse):
        return target
    body, control, call = target
    from sipscribe.recorder import StreamingError

    try:
        await control.stop_streaming(body.guid)
    except StreamingError as exc:
        return _error(request, exc.code, exc.message)
    except Exception:
        log.exception("stop-streaming %s failed", body.guid)
        return _error(request, "500-201", "internal error stopping the stream")
    return JSONResponse({"isOk": True, "autotranscribeResponse": _role_streams(call, True)})
