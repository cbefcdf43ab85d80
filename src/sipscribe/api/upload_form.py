"""The multipart audio upload both upload routes take: one ``file`` part plus text fields.

``POST /api/v2/calls`` (stored, transcribed in the background) and ``POST /v1/asr/transcribe``
(transcribed now, nothing kept) accept the same body and must refuse bad ones the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, BinaryIO

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from sipscribe.api.errors import ApiError
from sipscribe.api.middleware import allow_body_size

MAX_FORM_FIELD_BYTES = 64 * 1024
# Audio of any container PyAV can open; octet-stream because many clients send nothing better.
ACCEPTED_PART_TYPES = ("audio/", "video/")
ACCEPTED_EXACT_TYPES = frozenset({"application/octet-stream", "application/ogg"})


def accepted_part_type(content_type: str | None) -> bool:
    if not content_type:
        return True
    media_type = content_type.split(";")[0].strip().lower()
    return media_type.startswith(ACCEPTED_PART_TYPES) or media_type in ACCEPTED_EXACT_TYPES


async def read_audio_form(
    request: Request, *, max_upload_bytes: int, max_fields: int
) -> tuple[FormData, UploadFile]:
    """Parse the body and return it with its non-empty audio ``file`` part.

    415 for a body that is not multipart or a part that is not audio, 413 beyond
    ``max_upload_bytes``, 400 for a missing, non-file or empty part. The caller closes the
    form (``await form.close()``) when done with the file; on error it is closed here.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise ApiError(415, f"Content-Type must be multipart/form-data, got {media_type or 'none'}")
    allow_body_size(request, max_upload_bytes)
    form = await request.form(
        max_files=1, max_fields=max_fields, max_part_size=MAX_FORM_FIELD_BYTES
    )
    try:
        upload = form.get("file")
        if upload is None:
            raise ApiError(400, "file: a file part named 'file' is required")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "file: must be a file part, not a text field")
        if not accepted_part_type(upload.content_type):
            raise ApiError(
                415,
                f"file: content type {upload.content_type} is not audio;"
                " send audio/* (WAV, MP3, OGG, FLAC, …)",
            )
        if not upload.size:
            raise ApiError(400, "file: the uploaded file is empty")
    except BaseException:
        await form.close()
        raise
    return form, upload


def text_field(form: Any, name: str, *, max_length: int) -> str | None:
    """A text field, stripped; None when absent or blank; 400 for a file or a long value."""
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: must be a text field, not a file")
    value = value.strip()
    if len(value) > max_length:
        raise ApiError(400, f"{name}: longer than {max_length} characters")
    return value or None


def save_upload(source: BinaryIO, target: Path) -> int:
    """Copy the spooled upload to ``target`` (never overwriting); returns its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source.seek(0)
    with target.open("xb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
        return out.tell()
