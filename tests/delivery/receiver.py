"""A real HTTP webhook receiver for the delivery integration tests: a raw ASGI app served by
uvicorn on 127.0.0.1 (port 0, or a given one to come back on), optionally over TLS with client
certificates required. It records every POST with its arrival time, checks signatures, and
can act as an OAuth2 token endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from sipscribe.delivery.signing import SignatureError, verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # perf_counter on arrival
    signature_ok: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ReceiverApp:
    secret: str
    received: list[Received] = field(default_factory=list)
    #: When set, /hook demands one of these bearer tokens (the token endpoint issues them).
    require_token: bool = False
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    token_form: list[str] = field(default_factory=list)

    def hooks(self, path: str = "/hook") -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        if path == "/token":
            self.token_requests += 1
            self.token_form.append(body.decode())
            token = secrets.token_hex(8)
            self.tokens.add(token)
            await _respond(
                send, 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            )
            return
        if self.require_token:
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                await _respond(send, 401, {"error": "invalid_token"})
                return
        try:
            verify(
                headers.get("x-sipscribe-signature", ""), body, secret=self.secret, now=time.time()
            )
            ok = True
        except SignatureError:
            ok = False
        self.received.append(Received(path, headers, body, time.perf_counter(), ok))
        await _respond(send, 200, {"ok": True})


async def _respond(send: Any, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


@dataclass
class TlsFiles:
    certfile: Path
    keyfile: Path
    ca_certs: Path | None = None


class Served:
    """uvicorn running ``app`` in this event loop until ``stop()``."""

    def __init__(self, app: Any, *, port: int = 0, tls: TlsFiles | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs = {"ssl_certfile": str(tls.certfile), "ssl_keyfile": str(tls.keyfile)}
            if tls.ca_certs is not None:
                kwargs["ssl_ca_certs"] = str(tls.ca_certs)
                kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        self.config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
            **kwargs,
        )
        self.server = uvicorn.Server(self.config)
        # Leave the test runner's signal handlers alone.
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        deadline = asyncio.get_running_loop().time() + 10
        while not self.server.started:
            if self.task.done():
                self.task.result()
            assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
