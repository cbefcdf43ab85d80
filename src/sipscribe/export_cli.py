"""``sipscribe export --from … --to … --format jsonl|csv|parquet -o FILE``: utterances to a file.

For operators: reads the configured database directly (every tenant, or one with
``--tenant``), page by page (``store.exports.iter_utterance_pages``), so memory stays at one
page whatever the interval. Texts are the redacted ones wherever redaction ran. A progress bar
goes to stderr (``--quiet`` turns it off); the file is written under a temporary name and
renamed when complete, so an interrupted export never leaves a truncated file behind.

``cli.py`` wires it: ``add_arguments(subparser)`` then ``run(settings, args)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sipscribe.config import Settings
from sipscribe.delivery.export import (
    FORMATS,
    ExportFormatError,
    check_format,
    csv_header,
    csv_page,
    jsonl_page,
    parquet_batch,
    parquet_schema,
)
from sipscribe.store import tenants as tenant_store
from sipscribe.store.db import init_db
from sipscribe.store.exports import (
    DEFAULT_PAGE_SIZE,
    ExportError,
    count_utterances_between,
    iter_utterance_pages,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; without a zone it is UTC (a CLI convenience)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``export`` subcommand's arguments."""
    parser.add_argument(
        "--from", dest="start", required=True, type=parse_time, help="inclusive, ISO 8601"
    )
    parser.add_argument("--to", dest="end", required=True, type=parse_time, help="exclusive")
    parser.add_argument("--format", "-f", choices=FORMATS, default="jsonl")
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    parser.add_argument("--tenant", help="only this tenant (by name); default every tenant")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(settings: Settings, args: argparse.Namespace, *, stderr: IO[str] | None = None) -> int:
    """Write the export; returns the process exit code."""
    err = stderr or sys.stderr
    try:
        fmt = check_format(args.format)
        count = asyncio.run(_export(settings, args, fmt, err))
    except (ExportError, ExportFormatError, LookupError) as exc:
        print(f"sipscribe: error: {exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"sipscribe: error: cannot write {args.output}: {exc}", file=err)
        return EXIT_FAILURE
    if not args.quiet:
        print(f"exported {count} utterances to {args.output}", file=err)
    return EXIT_OK


async def _export(settings: Settings, args: argparse.Namespace, fmt: str, err: IO[str]) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    database = await init_db(settings)
    try:
        async with database.session() as session:
            tenant_id: str | None = None
            if args.tenant:
                tenant = await tenant_store.get_tenant_by_name(session, name=args.tenant)
                if tenant is None:
                    raise LookupError(f"no tenant named {args.tenant!r}")
                tenant_id = tenant.id
            total = await count_utterances_between(
                session, tenant_id=tenant_id, start=args.start, end=args.end
            )
        pages = iter_utterance_pages(
            database.session,
            tenant_id=tenant_id,
            start=args.start,
            end=args.end,
            page_size=args.page_size,
        )
        output: Path = args.output
        partial = output.with_name(f".{output.name}.partial")
        progress = Progress(
            TextColumn("exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(file=err),
            disable=bool(args.quiet),
            transient=True,
        )
        written = 0
        try:
            with progress:
                task = progress.add_task("export", total=total)
                writer = _writer(partial, fmt)
                try:
                    async for page in pages:
                        writer.write(page)
                        written += len(page)
                        progress.update(task, completed=written)
                finally:
                    writer.close()
            os.replace(partial, output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return written
    finally:
        await database.dispose()


class _Writer:
    def write(self, page: list[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TextWriter(_Writer):
    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt = fmt
        self.file = path.open("wb")
        if fmt == "csv":
            self.file.write(csv_header())

    def write(self, page: list[Any]) -> None:
        self.file.write(jsonl_page(page) if self.fmt == "jsonl" else csv_page(page))

    def close(self) -> None:
        self.file.close()


class _ParquetWriter(_Writer):
    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(str(path), parquet_schema(), compression="zstd")

    def write(self, page: list[Any]) -> None:
        if page:
            self.writer.write_batch(parquet_batch(page))

    def close(self) -> None:
        self.writer.close()


def _writer(path: Path, fmt: str) -> _Writer:
    return _ParquetWriter(path) if fmt == "parquet" else _TextWriter(path, fmt)
