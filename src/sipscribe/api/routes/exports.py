"""``/api/v2/exports/utterances``: every utterance of the tenant stored in an interval.

The response streams page by page (``store.exports.iter_utterance_pages``: a keyset walk, each
page its own short query), so an export of millions of utterances needs the memory of one page
on the server and arrives as it is read. Texts are the redacted ones wherever redaction ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from sipscribe.api.deps import Principal, ServicesDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import AUTH_ERRORS, error_responses
from sipscribe.delivery.export import MEDIA_TYPES, encode_pages
from sipscribe.store.exports import ExportError, check_interval, iter_utterance_pages
from sipscribe.store.keys import Scope

router = APIRouter(prefix="/api/v2/exports", tags=["exports"])

PAGE_SIZE = 1000


@router.get(
    "/utterances",
    summary="Stream every utterance stored in [from, to) as JSON Lines or CSV",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One line per utterance: call_id, external_id, sequence, channel, "
            "role, start_ms, end_ms, spoken_at, created_at, text",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        **error_responses(400, 503, *AUTH_ERRORS),
    },
)
async def export_utterances(
    principal: Annotated[Principal, Depends(require_scope(Scope.TRANSCRIPTION_READ))],
    services: ServicesDep,
    start: Annotated[datetime, Query(alias="from", description="Inclusive, with a timezone")],
    end: Annotated[datetime, Query(alias="to", description="Exclusive, with a timezone")],
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
) -> StreamingResponse:
    database = services.database
    if database is None:
        raise ApiError(503, "The database is not ready yet")
    try:
        check_interval(start, end)
    except ExportError as exc:
        raise ApiError(400, str(exc)) from None
    pages = iter_utterance_pages(
        database.session,
        tenant_id=principal.tenant_id,
        start=start,
        end=end,
        page_size=PAGE_SIZE,
    )

    async def body() -> AsyncIterator[bytes]:
        async for chunk in encode_pages(pages, format):
            yield chunk

    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="utterances-{stamp}.{format}"',
            "Cache-Control": "no-store",
        },
    )
