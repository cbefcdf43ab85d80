"""Request context middleware: body limits, request ids on every response, 500s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sipscribe.api.options import ApiOptions

from .conftest import Api, make_api


@pytest.fixture
async def small_api(database, db_settings) -> AsyncIterator[Api]:
    options = ApiOptions(max_upload_bytes=4096, max_json_body_bytes=256)
    async for value in make_api(database, db_settings, options=options):
        yield value


def _recordings(api: Api) -> list:
    root = api.settings.data_dir / "recordings"
    return sorted(root.rglob("*")) if root.exists() else []


async def test_upload_over_the_declared_limit_is_413_before_reading(small_api: Api) -> None:
    files = {"file": ("big.wav", b"\0" * 5000, "audio/wav")}
    response = await small_api.client.post(
        "/api/v2/calls", files=files, headers=await small_api.headers()
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["name"] == "PayloadTooLargeError"
    assert error["message"] == "Request body is larger than the limit of 4096 bytes"
    assert error["requestId"] == response.headers["X-Request-Id"]
    assert response.headers["X-RateLimit-Limit"] == "600"
    assert _recordings(small_api) == []
    assert small_api.runner.calls == []


async def test_chunked_upload_is_cut_off_at_the_limit(small_api: Api) -> None:
    boundary = "xyzzy"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        for _ in range(100):  # 100 KiB if nobody stops us
            sent += 1
            yield b"\0" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {
        **await small_api.headers(),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    response = await small_api.client.post("/api/v2/calls", content=body(), headers=headers)
    assert response.status_code == 413
    assert sent < 10
    assert _recordings(small_api) == []


async def test_json_body_limit(small_api: Api) -> None:
    response = await small_api.client.patch(
        "/api/v2/settings/summary",
        json={"base_instructions": "x" * 300},
        headers=await small_api.headers(),
    )
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "Request body is larger than the limit of 256 bytes"
    )


async def test_upload_within_the_limit_passes(small_api: Api) -> None:
    files = {"file": ("small.wav", b"\1" * 3000, "audio/wav")}
    response = await small_api.client.post(
        "/api/v2/calls", files=files, headers=await small_api.headers()
    )
    assert response.status_code == 201, response.text
    await small_api.settle()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/nowhere"),
        ("POST", "/healthz"),
        ("GET", "/api/v2/calls"),
    ],
)
async def test_every_response_has_a_request_id(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path)
    assert response.headers["X-Request-Id"]
