"""Dial-out over TLS: one sipscribe dials another that records plain calls over SIP/TLS.

The far end is a real TLS SIP server (our own SRS with ``record_plain_calls``), its
certificate signed by a test CA that only the dialling side's ``sip_tls_ca_file`` trusts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sipp import api, start_server, wait_connection
from tests.integration.test_sip_transports import _cert, _write

pytestmark = pytest.mark.integration

CONNECT = "/v1/endpoint:connect"


async def test_dial_a_sips_uri_verified_by_our_ca(tmp_path: Path, engine: Any) -> None:
    ca = _cert("test-ca", None, ca=True)
    ca_crt, _ = _write(tmp_path, "ca", ca)
    srv_crt, srv_key = _write(tmp_path, "srv", _cert("127.0.0.1", ca))
    far = await start_server(
        tmp_path / "far",
        engine,
        sip_tls_port=0,
        sip_tls_cert=srv_crt,
        sip_tls_key=srv_key,
        record_plain_calls=True,
    )
    near = await start_server(tmp_path / "near", engine, sip_tls_ca_file=ca_crt)
    try:
        uri = f"sips:recorder@127.0.0.1:{far.sip_tls_port}"
        r = await api(
            near,
            "POST",
            CONNECT,
            json={"operation": "start", "endpoint": {"type": "sip", "uri": uri}},
        )
        assert r.status_code == 201, r.text
        cid = r.json()["connectionId"]
        up = await wait_connection(near, cid, "connected", 20)
        # The far end recorded our call (same SIP Call-ID) and hears our RTP.
        for _ in range(100):
            if far.recorder.calls:
                break
            await asyncio.sleep(0.05)
        (call,) = far.recorder.calls.values()
        assert call.sip_call_id == up["sipCallId"]
        assert call.source.transport == "TLS"
        await asyncio.sleep(1.0)
        stream = next(iter(call.streams.values())).endpoint.stream
        assert stream is not None and stream.stats.packets >= 20  # 20 ms silence packets
        r = await api(near, "POST", CONNECT, json={"operation": "stop", "connectionId": cid})
        assert r.json()["reason"] == "completed"
        for _ in range(100):  # our BYE over the TLS connection ends the far end's call
            if not far.recorder.calls:
                break
            await asyncio.sleep(0.05)
        assert not far.recorder.calls
    finally:
        await near.stop(drain_timeout=5)
        await far.stop(drain_timeout=5)
