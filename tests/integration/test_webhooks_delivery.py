"""Webhooks end to end: pipeline events on an EventBus → DeliveryService → a real HTTP
receiver (uvicorn on 127.0.0.1), over a real database (SQLite, and PostgreSQL when one runs).

Covers order and signatures, a receiver that goes away and comes back (at_least_once loses
nothing, drop_oldest counts what it dropped), OAuth2 client credentials against a real token
endpoint, mutual TLS with certificates made in the test, and the SSRF refusal of a private
address the tenant did not allow. Dispatch latency (event in → POST out) is logged.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import statistics
import sys
from pathlib import Path

import pytest

from sipscribe.delivery.retry import RetryPolicy
from sipscribe.delivery.service import DeliveryOptions
from sipscribe.delivery.vcon import validate_vcon
from sipscribe.store import webhooks as webhook_store
from tests.delivery.certs import issue, make_ca
from tests.delivery.helpers import Pipeline, add_target, call_events, eventually, tenant
from tests.delivery.receiver import ReceiverApp, Served, TlsFiles

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_backends = _load(
    "sipscribe_test_backends", Path(__file__).resolve().parents[1] / "store" / "backends.py"
)
backend = _backends.backend
postgres_url = _backends.postgres_url
pg_schema = _backends.pg_schema
sqlite_template = _backends.sqlite_template
db_target = _backends.db_target
db_settings = _backends.db_settings
database = _backends.database

SECRET = "whsec_integration_secret_0123"
OPTIONS = DeliveryOptions(
    retry=RetryPolicy(base=0.05, factor=2.0, max_delay=0.3),
    target_cache_s=0.5,
    bundle_check_s=0.05,
    drain_s=3.0,
    fqhn="rec.example.com",
)


def first_seen_sequences(received) -> list[int]:
    seen: list[int] = []
    for r in received:
        seq = r.json["sequence"]
        if seq not in seen:
            seen.append(seq)
    return seen


async def test_order_signatures_outage_and_recovery(database) -> None:
    tenant_id = await tenant(database, allow_private_webhooks=True)
    app = ReceiverApp(SECRET)
    receiver = await Served(app).start()
    port = receiver.port
    base = f"http://127.0.0.1:{port}"
    alo = await add_target(
        database,
        tenant_id,
        f"{base}/alo",
        secret=SECRET,
        events=("transcript",),
        realtime={"policy": "at_least_once", "max_age_s": 120},
    )
    drop = await add_target(
        database,
        tenant_id,
        f"{base}/drop",
        secret=SECRET,
        events=("transcript",),
        realtime={"policy": "drop_oldest"},
    )
    events = list(call_events("call-int", tenant_id, utterances=60))
    before, middle, after = events[:23], events[23:43], events[43:]  # 1-20, 21-40, 41-60 + end
    try:
        async with Pipeline(database, OPTIONS) as pipeline:
            for event in before:  # paced like live speech, so latency is not queueing
                await pipeline.publish([event])
                await asyncio.sleep(0.02)
            await eventually(lambda: len(app.hooks("/alo")) == 20 and len(app.hooks("/drop")) == 20)
            await receiver.stop()
            await pipeline.publish(middle)
            svc = pipeline.service
            await eventually(
                lambda: svc.stats(drop)["dropped"] == 20 and svc.stats(alo)["retried"] >= 2
            )
            receiver = await Served(app, port=port).start()
            await pipeline.publish(after)
            await eventually(lambda: len(set(first_seen_sequences(app.hooks("/alo")))) == 60)
            await eventually(lambda: len(app.hooks("/drop")) == 40)
    finally:
        await receiver.stop()

    assert all(r.signature_ok for r in app.received)
    assert first_seen_sequences(app.hooks("/alo")) == list(range(1, 61))
    assert first_seen_sequences(app.hooks("/drop")) == [*range(1, 21), *range(41, 61)]
    stats = svc.stats(drop)
    assert stats["dropped"] == 20 and stats["failed_attempts"] == 20 and stats["delivered"] == 40
    assert svc.stats(alo)["dead_lettered"] == 0
    async with database.session() as s:
        rows = await webhook_store.list_deliveries(s, tenant_id=tenant_id, target_id=alo, limit=500)
    assert len(rows) == 60 and {r.state for r in rows} == {"delivered"}

    # Dispatch latency, for the record (timing is asserted in no test): publish → arrival.
    for path in ("/drop", "/alo"):
        latencies = [
            (r.at - pipeline.published[("call-int", r.json["sequence"])]) * 1000
            for r in app.hooks(path)
            if r.json["sequence"] <= 20
        ]
        log.warning(
            "webhook latency publish→receiver (%s) over loopback: p50 %.1f ms, max %.1f ms"
            " (%d posts)",
            path,
            statistics.median(latencies),
            max(latencies),
            len(latencies),
        )


async def test_bundles_json_and_vcon_reach_the_receiver(database) -> None:
    tenant_id = await tenant(database, allow_private_webhooks=True)
    app = ReceiverApp(SECRET)
    receiver = await Served(app).start()
    base = f"http://127.0.0.1:{receiver.port}"
    await add_target(database, tenant_id, f"{base}/json", secret=SECRET, events=("bundle",))
    await add_target(
        database, tenant_id, f"{base}/vcon", secret=SECRET, events=("bundle",), format="vcon"
    )
    try:
        async with Pipeline(database, OPTIONS) as pipeline:
            await pipeline.publish(call_events("call-b", tenant_id, utterances=5, redacted=True))
            await eventually(lambda: app.hooks("/json") and app.hooks("/vcon"))
    finally:
        await receiver.stop()
    (bundle,) = app.hooks("/json")
    assert bundle.headers["idempotency-key"] == "bundle:call-b" and bundle.signature_ok
    assert len(bundle.json["transcriptions"]) == 5
    (vcon,) = app.hooks("/vcon")
    assert vcon.headers["content-type"] == "application/vcon+json"
    validate_vcon(vcon.json)
    assert b"utterance number 1" not in vcon.body


async def test_oauth2_client_credentials_with_refresh_on_401(database) -> None:
    tenant_id = await tenant(database, allow_private_webhooks=True)
    app = ReceiverApp(SECRET, require_token=True)
    receiver = await Served(app).start()
    base = f"http://127.0.0.1:{receiver.port}"
    await add_target(
        database,
        tenant_id,
        f"{base}/hook",
        secret=SECRET,
        events=("transcript",),
        realtime={"policy": "at_least_once"},
        auth={
            "type": "oauth2",
            "token_url": f"{base}/token",
            "client_id": "sipscribe",
            "client_secret": "s3cret",
            "scope": "hooks",
        },
    )
    events = list(call_events("call-o", tenant_id, utterances=10))
    try:
        async with Pipeline(database, OPTIONS) as pipeline:
            await pipeline.publish(events[:8])  # utterances 1-5
            await eventually(lambda: len(app.hooks()) == 5)
            assert app.token_requests == 1
            app.tokens.clear()  # the receiver revokes every token
            await pipeline.publish(events[8:])
            await eventually(lambda: len(app.hooks()) == 10)
    finally:
        await receiver.stop()
    assert app.token_requests == 2
    assert first_seen_sequences(app.hooks()) == list(range(1, 11))
    assert (
        "grant_type=client_credentials" in app.token_form[0] and "scope=hooks" in app.token_form[0]
    )


async def test_mutual_tls(database, tmp_path: Path) -> None:
    ca, ca_cert, ca_key = make_ca()
    server = issue(ca_cert, ca_key, "127.0.0.1", server=True)
    client = issue(ca_cert, ca_key, "sipscribe", server=False)
    for name, text in {
        "ca.pem": ca.cert,
        "server.pem": server.cert,
        "server.key": server.key,
    }.items():
        (tmp_path / name).write_text(text)
    tls = TlsFiles(tmp_path / "server.pem", tmp_path / "server.key", tmp_path / "ca.pem")
    tenant_id = await tenant(database, allow_private_webhooks=True)
    app = ReceiverApp(SECRET)
    receiver = await Served(app, tls=tls).start()
    url = f"https://127.0.0.1:{receiver.port}/hook"
    with_cert = await add_target(
        database,
        tenant_id,
        url,
        secret=SECRET,
        events=("call.started",),
        tls={"ca_pem": ca.cert, "client_cert_pem": client.cert, "client_key_pem": client.key},
    )
    without_cert = await add_target(
        database,
        tenant_id,
        url.replace("/hook", "/nocert"),
        secret=SECRET,
        events=("call.started",),
        tls={"ca_pem": ca.cert},
    )
    untrusted = await add_target(
        database,
        tenant_id,
        url.replace("/hook", "/untrusted"),
        secret=SECRET,
        events=("call.started",),
    )
    try:
        async with Pipeline(database, OPTIONS) as pipeline:
            await pipeline.publish(list(call_events("call-t", tenant_id, utterances=0))[:1])
            svc = pipeline.service
            await eventually(
                lambda: (
                    app.hooks()
                    and svc.stats(without_cert)["dropped"] == 1
                    and svc.stats(untrusted)["dropped"] == 1
                )
            )
    finally:
        await receiver.stop()
    assert [r.json["type"] for r in app.received] == ["call.started"]
    assert svc.stats(with_cert)["delivered"] == 1
    assert "TLS failed" in svc.stats(untrusted)["last_error"]
    assert svc.stats(without_cert)["last_error"]  # the server refused the handshake


async def test_private_address_refused_unless_the_tenant_allows_it(database) -> None:
    tenant_id = await tenant(database)  # allow_private_webhooks not set
    app = ReceiverApp(SECRET)
    receiver = await Served(app).start()
    target = await add_target(
        database,
        tenant_id,
        f"http://127.0.0.1:{receiver.port}/hook",
        secret=SECRET,
        events=("transcript",),
        realtime={"policy": "at_least_once"},
    )
    try:
        async with Pipeline(database, OPTIONS) as pipeline:
            await pipeline.publish(list(call_events("call-s", tenant_id, utterances=2))[:5])
            svc = pipeline.service
            await eventually(lambda: svc.stats(target)["dead_lettered"] == 2)
    finally:
        await receiver.stop()
    assert app.received == []
    assert "allow_private_webhooks is off" in svc.stats(target)["last_error"]
    assert svc.stats(target)["retried"] == 0  # a refusal is final, not retried
