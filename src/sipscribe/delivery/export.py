"""Utterance export formats: JSON Lines, CSV and Parquet, written page by page.

Every format has the same columns (``COLUMNS``); times are ISO 8601 UTC with milliseconds,
spans are milliseconds from the start of the utterance's stream. The encoders turn one page of
``ExportRow``s into bytes (JSON Lines, CSV) or one record batch (Parquet), so the caller can
stream an export of any size in the memory of one page.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sipscribe.store.exports import ExportRow

FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = (
    "call_id",
    "external_id",
    "sequence",
    "channel",
    "role",
    "start_ms",
    "end_ms",
    "spoken_at",
    "created_at",
    "text",
)
MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


class ExportFormatError(ValueError):
    """An export format we do not write."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportFormatError(f"export format {fmt!r} is not one of: {', '.join(FORMATS)}")
    return fmt


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(row: ExportRow) -> dict[str, Any]:
    return {
        "call_id": row.call_id,
        "external_id": row.external_id,
        "sequence": row.sequence,
        "channel": row.channel,
        "role": row.role,
        "start_ms": row.start_ms,
        "end_ms": row.end_ms,
        "spoken_at": _iso(row.spoken_at),
        "created_at": _iso(row.created_at),
        "text": row.text,
    }


def jsonl_page(rows: Sequence[ExportRow]) -> bytes:
    return "".join(
        json.dumps(record(r), ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows
    ).encode("utf-8")


def csv_header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(COLUMNS)
    return buffer.getvalue().encode("utf-8")


def csv_page(rows: Sequence[ExportRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for r in rows:
        rec = record(r)
        writer.writerow(["" if rec[c] is None else rec[c] for c in COLUMNS])
    return buffer.getvalue().encode("utf-8")


async def encode_pages(pages: AsyncIterator[list[ExportRow]], fmt: str) -> AsyncIterator[bytes]:
    """The export as byte chunks, one per page (CSV starts with its header)."""
    check_format(fmt)
    if fmt == "parquet":
        raise ExportFormatError("parquet is written to a file, not streamed")
    if fmt == "csv":
        yield csv_header()
    async for page in pages:
        yield jsonl_page(page) if fmt == "jsonl" else csv_page(page)


def parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("call_id", pa.string()),
            ("external_id", pa.string()),
            ("sequence", pa.int64()),
            ("channel", pa.int32()),
            ("role", pa.string()),
            ("start_ms", pa.int64()),
            ("end_ms", pa.int64()),
            ("spoken_at", pa.timestamp("ms", tz="UTC")),
            ("created_at", pa.timestamp("ms", tz="UTC")),
            ("text", pa.string()),
        ]
    )


def parquet_batch(rows: Sequence[ExportRow]) -> Any:
    import pyarrow as pa

    schema = parquet_schema()
    columns = {
        "call_id": [r.call_id for r in rows],
        "external_id": [r.external_id for r in rows],
        "sequence": [r.sequence for r in rows],
        "channel": [r.channel for r in rows],
        "role": [r.role for r in rows],
        "start_ms": [r.start_ms for r in rows],
        "end_ms": [r.end_ms for r in rows],
        "spoken_at": [r.spoken_at for r in rows],
        "created_at": [r.created_at for r in rows],
        "text": [r.text for r in rows],
    }
    return pa.RecordBatch.from_pydict(columns, schema=schema)
