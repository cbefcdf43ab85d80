"""Batch export throughput and memory: the store's keyset walk, each format, and the HTTP route.

    .venv/bin/python bench/export.py [--utterances 200000] [--text-size 1100]
                                     [--page-size 1000] [--json bench/results/export.json]

Builds a SQLite database in a temporary directory (written with sqlite3 directly, in the
storage format SQLAlchemy uses) holding ``--utterances`` utterances of ``--text-size``
characters in calls of 1,000, then measures, each on a fresh peak-RSS counter
(``/proc/self/clear_refs``):

* ``jsonl`` and ``csv``: ``store.exports.iter_utterance_pages`` → ``delivery.export``
  encoders, bytes discarded (what ``GET /api/v2/exports/utterances`` streams);
* ``parquet``: ``export_cli.run`` writing a zstd Parquet file;
* ``http``: the real route served by uvicorn on 127.0.0.1, read by an httpx client as a stream
  (time to first byte and total).

Columns: rows/s, MiB/s of output, output MiB, and the peak RSS growth over the run, which stays
at a page's worth whatever the size of the export.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from sipscribe import export_cli  # noqa: E402
from sipscribe.config import Settings  # noqa: E402
from sipscribe.delivery.export import encode_pages  # noqa: E402
from sipscribe.store import keys as key_store  # noqa: E402
from sipscribe.store.db import init_db  # noqa: E402
from sipscribe.store.exports import iter_utterance_pages  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PER_CALL = 1000


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> int:
    with contextlib.suppress(OSError):  # not everywhere: then growth is from process start
        Path("/proc/self/clear_refs").write_text("5")
    return rss_kib("VmRSS")


def seed(path: Path, tenant_id: str, utterances: int, text_size: int) -> None:
    con = sqlite3.connect(path)
    stamp = T0.replace(tzinfo=None)
    calls = (utterances + PER_CALL - 1) // PER_CALL
    done = 0
    for c in range(calls):
        call_id = str(uuid.uuid4())
        con.execute(
            "INSERT INTO calls (id, tenant_id, source, state, started_at, vendor_ids,"
            " role_decisions, created_at, updated_at) VALUES (?, ?, 'siprec', 'completed',"
            " ?, '{}', '[]', ?, ?)",
            (call_id, tenant_id, str(stamp), str(stamp), str(stamp)),
        )
        count = min(PER_CALL, utterances - done)
        con.executemany(
            "INSERT INTO utterances (call_id, channel, role, sequence, start_ms, end_ms, text,"
            " redacted_text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    call_id,
                    seq % 2,
                    "agent" if seq % 2 else "customer",
                    seq,
                    seq * 1000,
                    seq * 1000 + 800,
                    f"call {c} utterance {seq} " + "w" * text_size,
                    None,
                    (stamp + timedelta(milliseconds=done + seq)).isoformat(" "),
                )
                for seq in range(1, count + 1)
            ),
        )
        done += count
    con.commit()
    con.close()


def result(name: str, rows: int, size: int, seconds: float, growth_kib: int) -> dict[str, Any]:
    return {
        "mode": name,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "mib_per_s": round(size / seconds / 2**20, 1),
        "output_mib": round(size / 2**20, 1),
        "peak_rss_growth_mib": round(growth_kib / 1024, 1),
    }


async def bench_stream(database: Any, tenant_id: str, fmt: str, page_size: int) -> dict:
    base = reset_peak()
    started = time.perf_counter()
    size = rows = 0
    pages = iter_utterance_pages(
        database.session,
        tenant_id=tenant_id,
        start=T0,
        end=T0 + timedelta(days=365),
        page_size=page_size,
    )
    async for chunk in encode_pages(pages, fmt):
        size += len(chunk)
        rows += chunk.count(b"\n")
    if fmt == "csv":
        rows -= 1  # header
    return result(fmt, rows, size, time.perf_counter() - started, rss_kib("VmHWM") - base)


async def bench_http(database: Any, settings: Settings) -> dict:
    import httpx
    import uvicorn

    from sipscribe.api.main import create_app
    from sipscribe.api.routes import exports
    from sipscribe.api.services import AppServices

    async with database.session() as session:
        _, secret = await key_store.create_key(
            session, tenant_name="bench", scopes=["calls.transcription.read"], name="bench"
        )
    app = create_app(
        settings,
        services=AppServices(database=database, ready=True),
        extra_routers=[exports.router],
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = reset_peak()
    started = time.perf_counter()
    first_byte = None
    size = rows = 0
    params = {"from": T0.isoformat(), "to": (T0 + timedelta(days=365)).isoformat()}
    async with (
        httpx.AsyncClient(timeout=600) as client,
        client.stream(
            "GET",
            f"http://127.0.0.1:{port}/api/v2/exports/utterances",
            params=params,
            headers={"Authorization": f"Bearer {secret}"},
        ) as response,
    ):
        async for chunk in response.aiter_raw():
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size += len(chunk)
            rows += chunk.count(b"\n")
    out = result("http jsonl", rows, size, time.perf_counter() - started, rss_kib("VmHWM") - base)
    out["first_byte_ms"] = round((first_byte or 0) * 1000, 1)
    server.should_exit = True
    await task
    return out


def bench_parquet(settings: Settings, directory: Path, utterances: int) -> dict:
    output = directory / "export.parquet"
    parser = argparse.ArgumentParser()
    export_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--from", "2026-01-01", "--to", "2027-01-01", "-f", "parquet", "-o", str(output), "-q"]
    )
    import pyarrow.parquet  # noqa: F401 - the library's own footprint is not the export's

    base = reset_peak()
    started = time.perf_counter()
    code = export_cli.run(settings, args)
    seconds = time.perf_counter() - started
    assert code == 0
    return result("parquet", utterances, output.stat().st_size, seconds, rss_kib("VmHWM") - base)


async def main_async(args: argparse.Namespace, directory: Path) -> list[dict]:
    settings = Settings(data_dir=directory)
    database = await init_db(settings)
    try:
        async with database.session() as session:
            from sipscribe.store.tenants import get_or_create_tenant

            tenant_id = (await get_or_create_tenant(session, name="bench")).id
        started = time.perf_counter()
        seed(directory / "sipscribe.db", tenant_id, args.utterances, args.text_size)
        print(f"seeded {args.utterances} utterances in {time.perf_counter() - started:.1f} s")
        results = [
            await bench_stream(database, tenant_id, "jsonl", args.page_size),
            await bench_stream(database, tenant_id, "csv", args.page_size),
            await bench_http(database, settings),
        ]
    finally:
        await database.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--utterances", type=int, default=200_000)
    parser.add_argument("--text-size", type=int, default=1100)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sipscribe-bench-export-") as tmp:
        directory = Path(tmp)
        results = asyncio.run(main_async(args, directory))
        results.append(bench_parquet(Settings(data_dir=directory), directory, args.utterances))
    header = f"{'mode':<12}{'rows/s':>10}{'MiB/s':>8}{'out MiB':>9}{'RSS +MiB':>10}"
    print(header)
    for r in results:
        print(
            f"{r['mode']:<12}{r['rows_per_s']:>10}{r['mib_per_s']:>8}{r['output_mib']:>9}"
            f"{r['peak_rss_growth_mib']:>10}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"utterances": args.utterances, "results": results}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
