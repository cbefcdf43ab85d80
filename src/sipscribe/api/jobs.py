"""Background jobs the API starts: transcribing a recording, summarising a transcript.

Each job opens its own session (the request's is gone by then), records its outcome as a state
on the call or summary row, and never lets an exception escape: a client polling the resource
sees ``speech_recognition_failed`` / ``failed`` with the reason instead of a silent stall.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sipscribe.api.services import AppServices
from sipscribe.store import summaries as summary_store
from sipscribe.store.calls import get_call, set_transcription_state
from sipscribe.store.models import TranscriptionState, UtteranceRecord
from sipscribe.store.utterances import list_utterances

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000


class CallLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Puts the call id on every record, as the rest of sipscribe's logs do."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {}).update(self.extra or {})
        return msg, kwargs


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def segment_of(utterance: UtteranceRecord, *, unredacted: bool) -> dict[str, Any]:
    """An utterance as the API and summary engines see it: seconds, chosen text, role if known."""
    text = utterance.text
    if not unredacted and utterance.redacted_text is not None:
        text = utterance.redacted_text
    segment = {
        "channel": utterance.channel,
        "start": utterance.start_ms / 1000.0,
        "end": utterance.end_ms / 1000.0,
        "text": text,
        "role": utterance.role,
    }
    if utterance.speaker:
        segment["speaker"] = utterance.speaker
    return segment


def transcript_of(
    utterances: Sequence[UtteranceRecord], *, unredacted: bool = False
) -> list[dict[str, Any]]:
    return [segment_of(u, unredacted=unredacted) for u in utterances]


async def run_transcription(
    services: AppServices,
    *,
    call_id: str,
    tenant_id: str,
    path: Path,
    roles: list[str] | None,
) -> None:
    """Run the injected ``TranscriptionRunner`` and settle the call's transcription state.

    The caller has already moved the call to ``speech_sent_to_recognition``.
    """
    logger = CallLogAdapter(log, {"call_id": call_id})
    assert services.database is not None and services.transcription_runner is not None
    in_progress = [TranscriptionState.SENT_TO_RECOGNITION, TranscriptionState.RECOGNIZED]
    try:
        await services.transcription_runner.transcribe_call(call_id, tenant_id, path, roles)
    except Exception as exc:
        logger.exception("transcription failed")
        async with services.database.session() as session:
            await set_transcription_state(
                session,
                call_id=call_id,
                tenant_id=tenant_id,
                state=TranscriptionState.RECOGNITION_FAILED,
                error=_reason(exc),
                expected=in_progress,
            )
        return
    async with services.database.session() as session:
        await set_transcription_state(
            session,
            call_id=call_id,
            tenant_id=tenant_id,
            state=TranscriptionState.STORED,
            expected=in_progress,
        )
    logger.info("transcription stored")


def combine_instructions(base: str | None, specific: str | None) -> str | None:
    """Tenant base instructions first, then the request's; None when both are empty."""
    parts = [p.strip() for p in (base, specific) if p and p.strip()]
    return "\n\n".join(parts) or None


async def run_summary(
    services: AppServices,
    *,
    summary_id: str,
    call_id: str,
    tenant_id: str,
    instructions: str | None,
) -> None:
    """Summarise the call's stored transcript with the injected engine and store the outcome."""
    logger = CallLogAdapter(log, {"call_id": call_id})
    assert services.database is not None
    async with services.database.session() as session:
        try:
            call = await get_call(session, call_id=call_id, tenant_id=tenant_id)
            if call is None:
                return
            utterances = await list_utterances(session, call_id=call_id, tenant_id=tenant_id)
            transcript = transcript_of(utterances)
            result = await services.summary_engine.summarize(transcript, instructions)
            if not isinstance(result, dict):
                raise TypeError(f"summary engine returned {type(result).__name__}, not a dict")
        except Exception as exc:
            logger.exception("summary failed")
            await session.rollback()
            await summary_store.finish_summary(session, summary_id=summary_id, error=_reason(exc))
            await _summary_done(services, call_id)
            return
        await summary_store.finish_summary(session, summary_id=summary_id, result=result)
    logger.info("summary processed")
    await _summary_done(services, call_id)


async def _summary_done(services: AppServices, call_id: str) -> None:
    if services.on_summary_done is None:
        return
    try:
        await services.on_summary_done(call_id)
    except Exception:
        log.exception("summary-done hook failed for call %s", call_id)
