"""Persist pipeline events as they happen: the store's subscriber on the public bus.

Events arrive already redacted (``intelligence.redacting_sink``). Each utterance is
committed on arrival, so a crash loses at most what was not yet recognised. Which text
goes where: in ``redacted_and_unredacted`` mode the raw text is ``text`` and the masked
one ``redacted_text``; in ``redacted`` mode both hold the masked text (the raw never
reaches the database); an unredacted event is stored as is.

Calls created elsewhere (uploads, through the API) are found and updated, not created
twice. ``wait_ended(call_id)`` lets a producer wait until a call's last event is stored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sipscribe.pipeline.bus import Subscription
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    CallUpdated,
    DtmfReceived,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
)
from sipscribe.store import calls as calls_q
from sipscribe.store import utterances as utt_q
from sipscribe.store.db import Database

log = logging.getLogger(__name__)


#: Ended calls remembered for late ``wait_ended`` callers.
ENDED_KEPT = 20_000


class StoreSink:
    def __init__(self, database: Database, *, default_tenant_id: str) -> None:
        self.database = database
        self.default_tenant_id = default_tenant_id
        self._tenants: dict[str, str] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.stored_utterances = 0
        self.failures = 0

    def _ended_event(self, call_id: str) -> asyncio.Event:
        event = self._ended.get(call_id)
        if event is None:
            event = self._ended[call_id] = asyncio.Event()
            if len(self._ended) > ENDED_KEPT:  # forget the oldest calls that have ended
                for old in [k for k, e in self._ended.items() if e.is_set()][: ENDED_KEPT // 2]:
                    del self._ended[old]
        return event

    async def wait_ended(self, call_id: str, timeout: float | None = None) -> None:
        """Until the call's ``call.ended`` is stored; any number of waiters, at any time
        after (a recently ended call returns at once)."""
        await asyncio.wait_for(self._ended_event(call_id).wait(), timeout)

    async def run(self, subscription: Subscription) -> None:
        async for event in subscription:
            await self.publish(event)

    async def publish(self, event: PipelineEvent) -> None:
        try:
            await self._store(event)
        except Exception:
            self.failures += 1
            log.exception(
                "storing %s of call %s failed", event.type, getattr(event, "call_id", "?")
            )
        if isinstance(event, CallEnded):
            self._ended_event(event.call_id).set()
            self._tenants.pop(event.call_id, None)

    async def _store(self, event: PipelineEvent) -> None:
        async with self.database.session() as s:
            if isinstance(event, CallStarted):
                await self._call_started(s, event)
                return
            tenant = self._tenants.get(event.call_id, self.default_tenant_id)
            if isinstance(event, UtteranceEvent):
                u = event.utterance
                raw = getattr(event, "raw", None)
                redacted_mode = hasattr(event, "redactions")
                text = raw.text if raw is not None else u.text
                words = raw.words if raw is not None else u.words
                await utt_q.add_utterance(
                    s,
                    call_id=u.call_id,
                    channel=u.channel,
                    start_ms=u.start_ms,
                    end_ms=u.end_ms,
                    text=text,
                    role=u.role,
                    stream_id=u.stream_id,
                    redacted_text=u.text if redacted_mode else None,
                    words=[w.to_dict() for w in words],
                    confidence=u.confidence,
                    recognised_at=u.recognized_at,
                    sequence=u.sequence,
                    speaker=u.speaker,
                )
                self.stored_utterances += 1
            elif isinstance(event, StreamStarted):
                await calls_q.upsert_stream(
                    s,
                    call_id=event.call_id,
                    stream_id=event.stream_id,
                    channel=event.channel,
                    label=event.label,
                    role=event.role,
                    codec=event.codec,
                )
            elif isinstance(event, StreamStopped):
                await calls_q.update_stream_stats(
                    s, call_id=event.call_id, stream_id=event.stream_id, stats=event.stats
                )
            elif isinstance(event, DtmfReceived):
                await utt_q.add_dtmf_event(
                    s,
                    call_id=event.call_id,
                    digit=event.digit,
                    start_ms=event.start_ms,
                    duration_ms=event.duration_ms,
                    channel=event.channel,
                    stream_id=event.stream_id,
                )
            elif isinstance(event, CallUpdated):
                await self._call_updated(s, event, tenant)
            elif isinstance(event, CallEnded):
                call = await calls_q.get_call(s, call_id=event.call_id, tenant_id=tenant)
                if call is not None and call.source != "upload":
                    await calls_q.end_call(
                        s, call_id=event.call_id, tenant_id=tenant, ended_at=event.at
                    )
                    await calls_q.set_transcription_state(
                        s, call_id=event.call_id, tenant_id=tenant, state="speech_stored"
                    )

    async def _call_updated(self, s: Any, event: CallUpdated, tenant: str) -> None:
        """Append the new role decision (the history shows how roles changed) and parties."""
        call = await calls_q.get_call(s, call_id=event.call_id, tenant_id=tenant)
        if call is None:
            return
        meta = event.metadata or {}
        roles = meta.get("roles")
        changes: dict[str, Any] = {}
        if roles:
            changes["role_decisions"] = [*(call.role_decisions or []), roles]
        for key in ("parties", "connection"):  # start-streaming parties; dial-out state
            if meta.get(key):
                changes["vendor_ids"] = {
                    **(changes.get("vendor_ids") or call.vendor_ids or {}),
                    key: meta[key],
                }
        if changes:
            await calls_q.update_call(s, call_id=event.call_id, tenant_id=tenant, changes=changes)
        for p in meta.get("participants", []):
            await calls_q.upsert_participant(
                s,
                call_id=event.call_id,
                participant_id=p["id"],
                aor=p.get("aor"),
                name=p.get("name"),
                role=_role_of(p["id"], roles),
            )

    async def _call_started(self, s: Any, event: CallStarted) -> None:
        tenant = event.tenant_id or self.default_tenant_id
        self._tenants[event.call_id] = tenant
        existing = await calls_q.get_call(s, call_id=event.call_id, tenant_id=tenant)
        if existing is not None:
            return
        meta = event.metadata or {}
        roles = meta.get("roles")
        await calls_q.create_call(
            s,
            tenant_id=tenant,
            source=event.source,
            call_id=event.call_id,
            external_id=event.external_id,
            sip_call_id=meta.get("sip_call_id"),
            started_at=event.at,
            vendor_ids=meta.get("identifiers") or {},
            role_decisions=[roles] if roles else [],
        )
        await calls_q.set_transcription_state(
            s, call_id=event.call_id, tenant_id=tenant, state="speech_sent_to_recognition"
        )
        for p in meta.get("participants", []):
            await calls_q.upsert_participant(
                s,
                call_id=event.call_id,
                participant_id=p["id"],
                aor=p.get("aor"),
                name=p.get("name"),
                role=_role_of(p["id"], roles),
            )


def _role_of(participant_id: str, roles: dict[str, Any] | None) -> str | None:
    for st in (roles or {}).get("streams", []):
        if st.get("participant_id") == participant_id and st.get("role"):
            return str(st["role"])
    return None
