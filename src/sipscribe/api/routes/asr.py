"""``POST /v1/asr/transcribe``: a recording in, its transcript out, in one request.

For tenants who want speech-to-text without the call resource: nothing is stored. The
upload goes to a temporary file, ``sipscribe.pipeline.filejob.transcribe_file`` runs on
a worker thread with the process's engine (``AppServices.asr_engine``, set by the
composition root), and the file is deleted. One file is transcribed at a time per
process (``MAX_CONCURRENT``) so uploads cannot crowd out live calls; a second upload
waits for the first.

Scope: ``calls.transcription.write``, the scope that starts a stored call's transcription:
this route spends the same engine on the same work, only it keeps nothing (``calls.write``
would also let the key create calls, which this route never does).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from sipscribe.api.deps import OptionsDep, Principal, ServicesDep, SettingsDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.routes.calls import parse_roles, safe_filename
from sipscribe.api.schemas import AUTH_ERRORS, Envelope, envelope, error_responses
from sipscribe.api.upload_form import read_audio_form, save_upload, text_field
from sipscribe.media.audiofile import AudioFileError, probe
from sipscribe.store.keys import Scope

router = APIRouter(prefix="/v1/asr", tags=["asr"])

MAX_CONCURRENT = 1

TRANSCRIBE_BODY_SCHEMA: dict[str, Any] = {
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
                    "roles": {
                        "type": "string",
                        "description": "Role of each channel in order, e.g. 'agent,customer'",
                    },
                    "language": {"type": "string", "description": "e.g. 'en'; default: auto"},
                },
            }
        }
    },
}


class TranscribedUtterance(BaseModel):
    channel: int
    role: str | None
    start: float = Field(description="Seconds from the start of the recording")
    end: float
    text: str
    confidence: float | None


class TranscribeOut(BaseModel):
    duration_s: float
    channels: int
    text: str = Field(description="All utterances in time order, one per line")
    utterances: list[TranscribedUtterance]


def _gate(request: Request) -> asyncio.Semaphore:
    state = request.app.state
    gate = getattr(state, "asr_transcribe_gate", None)
    if gate is None:
        gate = state.asr_transcribe_gate = asyncio.Semaphore(MAX_CONCURRENT)
    return gate  # type: ignore[no-any-return]


@router.post(
    "/transcribe",
    response_model=Envelope[TranscribeOut],
    summary="Transcribe an uploaded recording and return the transcript (nothing is stored)",
    openapi_extra={"requestBody": TRANSCRIBE_BODY_SCHEMA},
    responses=error_responses(400, 413, 415, 503, *AUTH_ERRORS),
)
async def transcribe(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_WRITE))],
    services: ServicesDep,
    settings: SettingsDep,
    options: OptionsDep,
) -> Envelope[TranscribeOut]:
    from sipscribe.pipeline.filejob import transcribe_file

    engine = getattr(services, "asr_engine", None)
    if engine is None:
        raise ApiError(503, "Transcription is not available on this server yet")
    form, upload = await read_audio_form(
        request, max_upload_bytes=options.max_upload_bytes, max_fields=4
    )
    workdir = Path(tempfile.mkdtemp(prefix="asr-", dir=_tmp_root(settings)))
    try:
        roles = parse_roles(text_field(form, "roles", max_length=200))
        language = text_field(form, "language", max_length=16)
        path = workdir / safe_filename(upload.filename)
        await asyncio.to_thread(save_upload, upload.file, path)
        await form.close()
        try:
            info = await asyncio.to_thread(probe, path)
        except AudioFileError as exc:
            raise ApiError(400, f"file: {exc}".replace(str(path), "the upload")) from None
        if roles is not None and len(roles) != info.channels:
            raise ApiError(
                400,
                f"roles: {len(roles)} role(s) given for a recording with {info.channels} "
                f"channel(s)",
            )
        async with _gate(request):
            result = await asyncio.to_thread(
                transcribe_file,
                path,
                engine,
                call_id="transcribe",
                roles=roles,  # type: ignore[arg-type]
                language=language,
            )
    finally:
        await form.close()
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    utterances = [
        TranscribedUtterance(
            channel=u.channel,
            role=u.role,
            start=u.start_ms / 1000.0,
            end=u.end_ms / 1000.0,
            text=u.text,
            confidence=u.confidence,
        )
        for u in result.utterances
    ]
    data = TranscribeOut(
        duration_s=round(result.duration_s, 3),
        channels=result.info.channels,
        text="\n".join(u.text for u in utterances),
        utterances=utterances,
    )
    return envelope(request, data)


def _tmp_root(settings: Any) -> Path:
    root = Path(settings.data_dir) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root
