"""Live conversation stream (WebSocket), its short-lived tokens, and transcript downloads.

``GET /v1/conversations/{id}/stream`` (WebSocket) pushes a call's events as JSON text
messages: utterances (already redacted), DTMF digits and lifecycle events, each with a
``sequence`` (an utterance's own number; for other events, the number of the last utterance
before them). Authenticate with ``Authorization: Bearer <key>`` / ``api-key`` headers, or with
``?token=`` from ``POST /v1/conversations/{id}/stream-token``; the key needs
``calls.transcription.read``. ``{id}`` is the call id or the call's external id.

Resuming: ``?after=N`` first replays from the store everything after utterance N, then
continues live, with no gap and no duplicate. The handover subscribes to the live feed
*before* reading the store, so an event published meanwhile is in the subscription, and the
live feed's backlog covers events the storage subscriber had not written yet; messages already
sent (by sequence for utterances, by identity for other events) are skipped. Without ``after``
the stream is live only.

Close codes: 1000 the call ended; 4008 the client read too slowly and was cut off (it may
resume with ``after``); 4401 no or bad credentials; 4403 the key lacks the scope; 4404 no such
conversation; 1011 the server cannot stream (database or live feed missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.api.deps import Principal, SessionDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import AUTH_ERRORS, Envelope, envelope, error_responses
from sipscribe.delivery import tokens
from sipscribe.delivery.formats import render
from sipscribe.delivery.live import FeedSubscription, LiveFeed
from sipscribe.delivery.payloads import message_key
from sipscribe.pipeline.utterance import Utterance
from sipscribe.store import calls as call_store
from sipscribe.store import keys, kv
from sipscribe.store import utterances as utterance_store
from sipscribe.store.exports import dtmf_after, utterances_after
from sipscribe.store.keys import Scope
from sipscribe.store.models import CallRecord, CallState

log = logging.getLogger(__name__)

router = APIRouter(tags=["conversations"])

ConversationId = Annotated[str, PathParam(min_length=1, max_length=255)]

CLOSE_CALL_ENDED = 1000
CLOSE_UNAVAILABLE = 1011
CLOSE_TOO_SLOW = 4008
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

TRANSCRIPT_TYPES = {
    "vtt": ("vtt", "text/vtt; charset=utf-8"),
    "srt": ("srt", "application/x-subrip; charset=utf-8"),
    "txt": ("text", "text/plain; charset=utf-8"),
    "json": ("json", "application/json"),
}


class StreamToken(BaseModel):
    token: str
    expires_at: int
    stream_url: str


async def find_conversation(
    session: AsyncSession, *, conversation_id: str, tenant_id: str
) -> CallRecord | None:
    """The call with this id, else the newest call with this external id."""
    call = await call_store.get_call(session, call_id=conversation_id, tenant_id=tenant_id)
    if call is not None:
        return call
    page = await call_store.list_calls(
        session, tenant_id=tenant_id, external_id=conversation_id, limit=1
    )
    return page.items[0] if page.items else None


async def token_secret(session: AsyncSession) -> str:
    """The instance's stream-token key, created on first use (safe against a racing creator)."""
    value = await kv.get_setting(session, key=tokens.SECRET_SETTING)
    if isinstance(value, str) and value:
        return value
    try:
        await kv.add_setting(session, key=tokens.SECRET_SETTING, value=tokens.new_secret())
    except IntegrityError:
        await session.rollback()
    value = await kv.get_setting(session, key=tokens.SECRET_SETTING)
    assert isinstance(value, str)
    return value


@router.post(
    "/v1/conversations/{conversation_id}/stream-token",
    response_model=Envelope[StreamToken],
    summary="A short-lived token for the conversation's WebSocket stream (?token=)",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def issue_stream_token(
    request: Request,
    conversation_id: ConversationId,
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_READ))],
    session: SessionDep,
    ttl: Annotated[int, Query(ge=10, le=tokens.MAX_TTL_S)] = tokens.DEFAULT_TTL_S,
) -> Envelope[StreamToken]:
    call = await find_conversation(
        session, conversation_id=conversation_id, tenant_id=principal.tenant_id
    )
    if call is None:
        raise ApiError(404, f"No conversation {conversation_id}")
    expires_at = int(time.time()) + ttl
    claims = tokens.StreamClaims(call.id, principal.tenant_id, principal.key_id, expires_at)
    token = tokens.issue(await token_secret(session), claims)
    url = f"/v1/conversations/{call.id}/stream?token={token}"
    return envelope(request, StreamToken(token=token, expires_at=expires_at, stream_url=url))


@router.get(
    "/api/v2/calls/{call_id}/transcript.{fmt}",
    summary="Download the call's transcript as WebVTT, SRT, plain text or JSON",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/vtt": {},
                "application/x-subrip": {},
                "text/plain": {},
                "application/json": {},
            }
        },
        **error_responses(403, 404, *AUTH_ERRORS),
    },
)
async def download_transcript(
    call_id: Annotated[str, PathParam(min_length=1, max_length=64)],
    fmt: Literal["vtt", "srt", "txt", "json"],
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_READ))],
    session: SessionDep,
    unredacted: Annotated[
        bool, Query(description="Original text (needs calls.transcription.read_unredacted)")
    ] = False,
) -> Response:
    if unredacted and not principal.can(Scope.TRANSCRIPTION_READ_UNREDACTED):
        raise ApiError(
            403, f"This API key lacks the scope {Scope.TRANSCRIPTION_READ_UNREDACTED.value!r}"
        )
    call = await call_store.get_call(session, call_id=call_id, tenant_id=principal.tenant_id)
    if call is None:
        raise ApiError(404, f"No call {call_id}")
    rows = await utterance_store.list_utterances(
        session, call_id=call_id, tenant_id=principal.tenant_id
    )
    if not rows and call.transcription_state is None and call.state != CallState.ACTIVE:
        raise ApiError(404, f"Call {call_id} has no transcription")
    utterances = [
        Utterance(
            call_id=u.call_id,
            stream_id=u.stream_id or "",
            channel=u.channel,
            role=u.role,  # type: ignore[arg-type]
            sequence=u.sequence,
            start_ms=u.start_ms,
            end_ms=u.end_ms,
            text=u.text if unredacted or u.redacted_text is None else u.redacted_text,
        )
        for u in rows
    ]
    name, media_type = TRANSCRIPT_TYPES[fmt]
    return Response(
        render(utterances, name),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{call_id}.{fmt}"'},
    )


# -- the WebSocket ------------------------------------------------------------------------


def _feed(websocket: WebSocket) -> LiveFeed | None:
    service = getattr(websocket.app.state, "delivery", None)
    if service is not None:
        return service.feed  # type: ignore[no-any-return]
    return getattr(websocket.app.state, "live_feed", None)


async def _authenticate(
    websocket: WebSocket, session: AsyncSession, token: str | None
) -> tuple[str, str | None] | tuple[int, str]:
    """``(tenant_id, token call id)`` or ``(close code, reason)``."""
    header = websocket.headers.get("authorization", "")
    secret = header[7:].strip() if header.lower().startswith("bearer ") else None
    secret = secret or websocket.headers.get("api-key")
    if secret:
        key = await keys.authenticate(session, secret=secret.strip())
        if key is None:
            return CLOSE_UNAUTHORIZED, "API key is not valid or has been revoked"
        if not keys.has_scope(key.scopes, Scope.TRANSCRIPTION_READ):
            return CLOSE_FORBIDDEN, f"API key lacks the scope {Scope.TRANSCRIPTION_READ.value!r}"
        tenant_id = key.tenant_id
        await session.commit()
        return tenant_id, None
    if token:
        try:
            secret_key = await token_secret(session)
            # The path may name the external id: the caller checks the token's call id.
            claims = tokens.verify(secret_key, token, call_id=None, now=time.time())
        except tokens.StreamTokenError as exc:
            return CLOSE_UNAUTHORIZED, str(exc)
        return claims.tenant_id, claims.call_id
    return CLOSE_UNAUTHORIZED, "send 'Authorization: Bearer <key>' or ?token="


def _utterance_message(u: Any) -> dict[str, Any]:
    return {
        "type": "utterance",
        "call_id": u.call_id,
        "stream_id": u.stream_id,
        "channel": u.channel,
        "role": u.role,
        "sequence": u.sequence,
        "start_ms": u.start_ms,
        "end_ms": u.end_ms,
        # Stored words may be the unredacted ones: a replay sends the redacted text only.
        "text": u.redacted_text if u.redacted_text is not None else u.text,
        "words": [],
        "confidence": u.confidence,
        "recognized_at": _iso(u.recognised_at),
        "at": _iso(u.created_at),
        "replayed": True,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


async def replay_messages(
    session: AsyncSession, call: CallRecord, after: int
) -> list[dict[str, Any]]:
    """What a client resuming after utterance ``after`` missed, from the store, in order."""
    messages: list[dict[str, Any]] = []
    if after == 0:
        messages.append(
            {
                "type": "call.started",
                "call_id": call.id,
                "source": call.source,
                "external_id": call.external_id,
                "tenant_id": call.tenant_id,
                "metadata": {},
                "at": _iso(call.started_at),
                "sequence": 0,
                "replayed": True,
            }
        )
    rows = await utterances_after(session, call_id=call.id, tenant_id=call.tenant_id, after=after)
    digits = await dtmf_after(session, call_id=call.id, tenant_id=call.tenant_id, after=after)
    # Interleave by storage time: a digit follows the utterances stored before it.
    timeline: list[tuple[Any, int, dict[str, Any]]] = []
    for u in rows:
        timeline.append((u.created_at, 0, _utterance_message(u)))
    for d in digits:
        timeline.append(
            (
                d.created_at,
                1,
                {
                    "type": "dtmf",
                    "call_id": call.id,
                    "stream_id": d.stream_id,
                    "channel": d.channel,
                    "role": None,
                    "digit": d.digit,
                    "start_ms": d.start_ms,
                    "duration_ms": d.duration_ms,
                    "at": _iso(d.created_at),
                    "replayed": True,
                },
            )
        )
    timeline.sort(key=lambda item: (item[0], item[1]))
    position = after
    for _, _, message in timeline:
        if message["type"] == "utterance":
            position = max(position, message["sequence"])
        else:
            message["sequence"] = position
        messages.append(message)
    if call.state != CallState.ACTIVE.value:
        messages.append(
            {
                "type": "call.ended",
                "call_id": call.id,
                "reason": call.state,
                "utterances": position,
                "duration_ms": None
                if call.duration_sec is None
                else round(call.duration_sec * 1000),
                "at": _iso(call.ended_at),
                "sequence": position,
                "replayed": True,
            }
        )
    return messages


class _Sender:
    """Sends each event at most once: utterances by sequence, others by identity; on a resume
    the client has every event positioned before its last utterance. (An event positioned *at*
    it, i.e. right after that utterance, is sent again unless this session sent it: the client
    cannot say whether it got it, and a duplicate it can drop is better than a gap.)"""

    def __init__(self, websocket: WebSocket, after: int | None) -> None:
        self.websocket = websocket
        self.last_sequence = after if after is not None else -1
        self.sent: set[tuple[Any, ...]] = set()
        self.ended = False

    async def send(self, message: dict[str, Any]) -> None:
        key = message_key(message)
        if message.get("type") == "utterance":
            sequence = int(message.get("sequence") or 0)
            if sequence <= self.last_sequence:
                return
            self.last_sequence = sequence
        elif key in self.sent:
            return
        elif int(message.get("sequence") or 0) < self.last_sequence:
            # Before the client's last utterance, so it has it (the backlog holds older events).
            return
        self.sent.add(key)
        await self.websocket.send_json(message)
        if message.get("type") == "call.ended":
            self.ended = True


@router.websocket("/v1/conversations/{conversation_id}/stream")
async def conversation_stream(
    websocket: WebSocket,
    conversation_id: str,
    after: Annotated[int | None, Query(ge=0)] = None,
    token: Annotated[str | None, Query(max_length=2048)] = None,
) -> None:
    await websocket.accept()
    services = websocket.app.state.services
    feed = _feed(websocket)
    if services.database is None or feed is None:
        await websocket.close(CLOSE_UNAVAILABLE, "live streaming is not available")
        return
    async with services.database.session() as session:
        auth = await _authenticate(websocket, session, token)
        if isinstance(auth[0], int):
            await websocket.close(auth[0], str(auth[1]))
            return
        tenant_id, token_call = auth
        call = await find_conversation(
            session, conversation_id=conversation_id, tenant_id=str(tenant_id)
        )
        if call is None or (token_call is not None and token_call != call.id):
            await websocket.close(CLOSE_NOT_FOUND, f"no conversation {conversation_id}")
            return
        # Subscribe first, then read the store: nothing can fall between the two.
        subscription = feed.subscribe(call.id, backlog=after is not None)
        try:
            replay = await replay_messages(session, call, after) if after is not None else []
        except Exception:
            subscription.close()
            raise
    with subscription:
        await _stream(websocket, subscription, replay, after)


async def _stream(
    websocket: WebSocket,
    subscription: FeedSubscription,
    replay: list[dict[str, Any]],
    after: int | None,
) -> None:
    sender = _Sender(websocket, after)

    async def pump() -> None:
        for message in replay:
            await sender.send(message)
            if sender.ended:
                return
        while (message := await subscription.get()) is not None:
            await sender.send(message)
            if sender.ended:
                return

    async def listen() -> None:
        # Reading is how a disconnect is noticed while no event is being sent.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {
        asyncio.create_task(pump(), name="ws-pump"),
        asyncio.create_task(subscription.cut.wait(), name="ws-cut"),
        asyncio.create_task(listen(), name="ws-listen"),
    }
    pump_task = next(t for t in tasks if t.get_name() == "ws-pump")
    listen_task = next(t for t in tasks if t.get_name() == "ws-listen")
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
    if listen_task in done:
        return  # the client went away
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        if subscription.too_slow:
            log.info("conversation %s: stream client too slow, closing", subscription.call_id)
            await websocket.close(CLOSE_TOO_SLOW, "client too slow")
        elif pump_task in done and pump_task.exception() is None:
            await websocket.close(CLOSE_CALL_ENDED, "call ended")
        else:
            await websocket.close(CLOSE_UNAVAILABLE, "stream ended")
