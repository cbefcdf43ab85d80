"""The outermost layer of every request: request id, rate-limit headers, body limit, 500s.

A pure ASGI middleware (no ``BaseHTTPMiddleware``, which buffers and breaks streaming) that

* gives each request an id (the client's ``X-Request-Id`` if it is a sane token, else a new
  one), puts it in ``scope["state"]`` for error bodies and envelopes, and on every response;
* copies the rate-limit decision the auth dependency left in the state into ``X-RateLimit-*``
  headers, so 403s and 404s of an authenticated client carry them too;
* caps the request body: ``max_json_body_bytes`` unless a route raises the cap for itself
  (``allow_body_size``) before reading, as the upload route does; a declared Content-Length over
  the cap is refused before any byte is read, a chunked body as soon as it passes the cap;
* turns any exception nobody handled into a 500 in the common error format, logged with its
  request id, instead of a bare text page.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sipscribe.api.errors import ApiError, error_response
from sipscribe.api.metrics import Metrics
from sipscribe.api.ratelimit import RateLimitDecision

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_BODY_LIMIT_KEY = "body_limit"


def allow_body_size(request: Request, limit: int) -> None:
    """Let this request's body be up to ``limit`` bytes; call before reading it."""
    request.state.body_limit = limit


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body is larger than the limit of {limit} bytes")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state["request_id"] = request_id
        declared_length = _content_length(scope)
        received = 0
        response_started = False
        status = 500

        async def limited_receive() -> Message:
            nonlocal received
            limit = int(state.get(_BODY_LIMIT_KEY, self.max_body_bytes))
            if declared_length is not None and declared_length > limit:
                raise _too_large(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started, status
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = request_id
                decision = state.get("rate_limit")
                if isinstance(decision, RateLimitDecision):
                    for name, value in decision.headers().items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if response_started:
                raise  # the status line is gone; the server can only drop the connection
            response = error_response(scope, 500, "Internal server error")
            await response(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.http_requests.labels(method, label, str(status)).inc()
            self.metrics.http_request_duration.labels(method, label).observe(
                time.perf_counter() - started_at
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1").strip()
    return None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
