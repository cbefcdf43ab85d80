"""Telephony connect, the hosted conversation APIs' convention: dial a SIP URI and listen.

``POST /v1/endpoint:connect`` with ``operation: start`` dials and answers ``201`` with the
conversation id, the connection id, an ``eventUrl`` for speaker events and the live
result WebSocket; ``operation: stop`` hangs up. ``GET /v1/endpoint:connect/{id}`` shows
the connection's state (dialing, ringing, connected, ended with the SIP status and a
reason). Errors are our usual error body, with ``error.field`` naming the bad input.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sipscribe.api.deps import Principal, ServicesDep, SessionDep, require_scope
from sipscribe.api.errors import error_body, request_id_of
from sipscribe.delivery.email import validate_recipients
from sipscribe.dialout.manager import Dialer, DialError, DialRequest
from sipscribe.dialout.offer import ENCODINGS
from sipscribe.pipeline.speakers import Speaker
from sipscribe.sip.errors import SipParseError
from sipscribe.sip.uri import SipUri
from sipscribe.store import calls as calls_q
from sipscribe.store.keys import Scope

log = logging.getLogger(__name__)

router = APIRouter(tags=["connect"])

_DTMF = r"^[0-9A-Da-d*#,]{0,128}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioConfig(_Model):
    sampleRate: Literal[8000, 16000, 48000] | None = None
    encoding: Literal["PCMU", "PCMA", "OPUS", "G722"] = "PCMU"
    sampleSize: Literal[16] = 16


class SipAuth(_Model):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(max_length=500)


class Endpoint(_Model):
    type: Literal["sip"]
    uri: str = Field(min_length=5, max_length=2000)
    providerName: str | None = Field(default=None, max_length=200)
    audioConfig: AudioConfig = Field(default_factory=AudioConfig)
    auth: SipAuth | None = None
    displayName: str | None = Field(default=None, max_length=200)


class SummaryEmailParameters(_Model):
    emails: list[str] = Field(min_length=1, max_length=50)


class Action(_Model):
    invokeOn: Literal["stop"]
    name: Literal["sendSummaryEmail"]
    parameters: SummaryEmailParameters


class Session(_Model):
    name: str | None = Field(default=None, max_length=500)


class Data(_Model):
    session: Session | None = None


class ConnectRequest(_Model):
    operation: Literal["start", "stop"]
    endpoint: Endpoint | None = None
    actions: list[Action] = Field(default_factory=list, max_length=10)
    data: Data | None = None
    languages: list[str] | None = Field(default=None, max_length=1)
    dtmf: str | None = Field(default=None, pattern=_DTMF)
    connectionId: str | None = Field(default=None, max_length=100)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        for lang in value or []:
            if not lang or len(lang) > 20 or not lang.replace("-", "").isalnum():
                raise ValueError(f"not a language tag: {lang!r}")
        return value


class SpeakerUser(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=500)
    name: str | None = Field(default=None, max_length=500)
    email: str | None = Field(default=None, max_length=500)


class SpeakerEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["started_speaking", "stopped_speaking"]
    user: SpeakerUser
    timestamp: datetime | float | None = None


def _error(request: Request, status: int, message: str, field: str | None = None) -> JSONResponse:
    body = error_body(status, message, request_id=request_id_of(request.scope))
    if field:
        body["error"]["field"] = field
    return JSONResponse(body, status_code=status)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise DialError(400, f"body is not valid JSON: {exc}") from exc


def _validate(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise DialError(400, f"{where}: {first['msg']}" if where else first["msg"], where) from exc


def _dialer(services: Any) -> Dialer:
    dialer = getattr(services, "dialer", None)
    if dialer is None:
        raise DialError(500, "this server has no SIP dialer running")
    return dialer


def _dial_request(body: ConnectRequest) -> DialRequest:
    endpoint = body.endpoint
    if endpoint is None:
        raise DialError(400, "endpoint: required for operation start", "endpoint")
    try:
        uri = SipUri.parse(endpoint.uri)
    except (SipParseError, ValueError) as exc:
        raise DialError(400, f"endpoint.uri: not a SIP URI: {exc}", "endpoint.uri") from exc
    if uri.scheme not in ("sip", "sips"):
        raise DialError(400, "endpoint.uri: must be a sip: or sips: URI", "endpoint.uri")
    audio = endpoint.audioConfig
    rates = ENCODINGS[audio.encoding]
    if audio.sampleRate is not None and audio.sampleRate not in rates:
        raise DialError(
            400,
            f"endpoint.audioConfig.sampleRate: {audio.encoding} carries "
            f"{' or '.join(map(str, rates))} Hz, not {audio.sampleRate}",
            "endpoint.audioConfig.sampleRate",
        )
    actions: list[dict[str, Any]] = []
    for i, action in enumerate(body.actions):
        try:
            emails = validate_recipients(action.parameters.emails)
        except ValueError as exc:
            where = f"actions.{i}.parameters.emails"
            raise DialError(400, f"{where}: {exc}", where) from exc
        actions.append({"name": action.name, "invokeOn": action.invokeOn, "emails": emails})
    session = body.data.session if body.data and body.data.session else None
    return DialRequest(
        uri=uri,
        encoding=audio.encoding,
        sample_rate=audio.sampleRate,
        dtmf=body.dtmf or "",
        language=_language(body.languages),
        session_name=session.name if session else None,
        provider_name=endpoint.providerName,
        credentials=(endpoint.auth.username, endpoint.auth.password) if endpoint.auth else None,
        display_name=endpoint.displayName,
        actions=tuple(actions),
    )


def _language(languages: list[str] | None) -> str | None:
    """ "en-US" → "en" (what the recogniser takes); None keeps the server's default."""
    if not languages:
        return None
    return languages[0].split("-")[0].lower()


def _urls(request: Request, conn: Any) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    ws = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
    return {
        "eventUrl": f"{base}/v1/event/{conn.id}",
        "resultWebSocketUrl": f"{ws}/v1/conversations/{conn.conversation_id}/stream",
    }


def _owned(dialer: Dialer, connection_id: str, principal: Principal) -> Any:
    conn = dialer.get(connection_id)
    if conn is None or conn.tenant_id != principal.tenant_id:
        raise DialError(404, f"no connection {connection_id}", "connectionId")
    return conn


@router.post(
    "/v1/endpoint:connect",
    status_code=201,
    summary="Dial a SIP URI and transcribe the call (start), or hang up (stop)",
)
async def connect(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.CONNECT))],
    services: ServicesDep,
) -> JSONResponse:
    try:
        raw = await _json(request)
        if not isinstance(raw, dict):
            raise DialError(400, "body must be a JSON object")
        body: ConnectRequest = _validate(ConnectRequest, raw)
        dialer = _dialer(services)
        if body.operation == "stop":
            if not body.connectionId:
                raise DialError(400, "connectionId: required for operation stop", "connectionId")
            conn = _owned(dialer, body.connectionId, principal)
            conn = await dialer.stop(conn.id)
            return JSONResponse({**conn.to_dict(), **_urls(request, conn)}, status_code=200)
        dial = _dial_request(body)
        conn = await dialer.start(principal.tenant_id, dial)
    except DialError as exc:
        return _error(request, exc.status, exc.message, exc.field)
    except Exception as exc:
        log.exception("endpoint:connect failed")
        return _error(request, 500, f"internal error: {exc}")
    return JSONResponse(
        {"conversationId": conn.conversation_id, "connectionId": conn.id, **_urls(request, conn)},
        status_code=201,
    )


@router.get("/v1/endpoint:connect/{connection_id}", summary="A connection's state")
async def connection_state(
    request: Request,
    connection_id: Annotated[str, Path(max_length=100)],
    principal: Annotated[Principal, Depends(require_scope(Scope.CALLS_READ))],
    services: ServicesDep,
    session: SessionDep,
) -> JSONResponse:
    try:
        conn = _owned(_dialer(services), connection_id, principal)
    except DialError as exc:
        if exc.status != 404:
            return _error(request, exc.status, exc.message, exc.field)
        # Not in memory (ended long ago, or before a restart): the call record keeps it.
        call = await calls_q.get_call_by_external_id(
            session, external_id=connection_id, tenant_id=principal.tenant_id
        )
        stored = (call.vendor_ids or {}).get("connection") if call is not None else None
        if not stored:
            return _error(request, 404, exc.message, exc.field)
        return JSONResponse(stored)
    return JSONResponse({**conn.to_dict(), **_urls(request, conn)})


@router.post("/v1/event/{connection_id}", summary="Speaker events of a connection")
async def speaker_events(
    request: Request,
    connection_id: Annotated[str, Path(max_length=100)],
    principal: Annotated[Principal, Depends(require_scope(Scope.CONNECT))],
    services: ServicesDep,
) -> JSONResponse:
    """One event or a list: ``started_speaking``/``stopped_speaking`` with the user and
    an optional ``timestamp`` (ISO 8601, or ms since the epoch; default: now)."""
    try:
        raw = await _json(request)
        items = raw if isinstance(raw, list) else [raw]
        if not items or len(items) > 1000:
            raise DialError(400, "send one event or a list of 1 to 1000 events")
        events = [_validate(SpeakerEvent, item) for item in items]
        dialer = _dialer(services)
        conn = _owned(dialer, connection_id, principal)
        if conn.ended_at is not None or conn.ending:
            raise DialError(409, f"connection {connection_id} has ended")
        for ev in events:
            speaker = Speaker(ev.user.id, ev.user.name, ev.user.email)
            dialer.speaker_event(conn.id, ev.type, speaker, _when(ev.timestamp))
    except DialError as exc:
        return _error(request, exc.status, exc.message, exc.field)
    return JSONResponse({"accepted": len(events)}, status_code=202)


def _when(value: datetime | float | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value / 1000, UTC)
