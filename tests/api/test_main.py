"""The app factory: OpenAPI, docs, one error format everywhere, request ids, composition."""

from __future__ import annotations

from fastapi import APIRouter

from sipscribe.api.main import create_app
from sipscribe.api.services import AppServices
from sipscribe.config import Settings

from .conftest import Api, make_api


async def test_openapi_documents_our_errors_not_fastapis(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert {
        "/api/v2/calls",
        "/api/v2/calls/{call_id}",
        "/api/v2/calls/{call_id}/transcription",
        "/api/v2/calls/{call_id}/summary",
        "/api/v2/settings/summary",
        "/healthz",
        "/metrics",
    } <= set(paths)
    for path, item in paths.items():
        for method, operation in item.items():
            assert "422" not in operation["responses"], (method, path)
    listing = paths["/api/v2/calls"]["get"]
    assert listing["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert {p["name"] for p in listing["parameters"]} == {
        "limit",
        "cursor",
        "from",
        "to",
        "state",
        "external_id",
    }
    upload = paths["/api/v2/calls"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


async def test_docs_page(api: Api) -> None:
    response = await api.client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
    assert "X-Request-Id" in response.headers


async def test_unknown_route_is_404_in_our_format(api: Api) -> None:
    response = await api.client.get("/api/v2/nothing-here")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "statusCode": 404,
            "name": "NotFoundError",
            "message": "No route matches /api/v2/nothing-here",
            "requestId": response.headers["X-Request-Id"],
        }
    }


async def test_wrong_method_is_405_in_our_format(api: Api) -> None:
    response = await api.client.delete("/api/v2/calls", headers=await api.headers())
    assert response.status_code == 405
    assert response.json()["error"]["name"] == "MethodNotAllowedError"
    assert response.json()["error"]["message"] == "Method DELETE is not allowed on /api/v2/calls"
    assert "GET" in response.headers["Allow"]


async def test_validation_error_names_the_field(api: Api) -> None:
    response = await api.client.get(
        "/api/v2/calls", params={"limit": "many"}, headers=await api.headers()
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["name"] == "BadRequestError"
    assert error["message"].startswith("query.limit: Input should be a valid integer")


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.client.patch(
        "/api/v2/settings/summary",
        content=b"{not json",
        headers={**await api.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("body.1: JSON decode error")


async def test_request_id_is_new_unless_the_client_sent_a_sane_one(api: Api) -> None:
    first = await api.client.get("/healthz")
    second = await api.client.get("/healthz")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    assert len(first.headers["X-Request-Id"]) == 32
    echoed = await api.client.get("/healthz", headers={"X-Request-Id": "lb-1234.abc:9"})
    assert echoed.headers["X-Request-Id"] == "lb-1234.abc:9"
    replaced = await api.client.get("/healthz", headers={"X-Request-Id": "bad id<script>"})
    assert replaced.headers["X-Request-Id"] != "bad id<script>"
    assert len(replaced.headers["X-Request-Id"]) == 32


async def test_unhandled_exception_is_500_in_our_format(database, db_settings) -> None:
    broken = APIRouter()

    @broken.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    services = AppServices(database=database, ready=True)
    app = create_app(db_settings, services=services, extra_routers=[broken])
    import httpx

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "statusCode": 500,
            "name": "InternalServerError",
            "message": "Internal server error",
            "requestId": response.headers["X-Request-Id"],
        }
    }
    assert "secret internals" not in response.text


async def test_without_database_data_routes_are_503(tmp_path) -> None:
    import httpx

    app = create_app(Settings(data_dir=tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/v2/calls", headers={"api-key": "ssk_x"})
        health = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "The database is not ready yet"
    assert health.status_code == 503


async def test_each_app_has_its_own_metrics_and_limits(database, db_settings) -> None:
    gen_a = make_api(database, db_settings)
    gen_b = make_api(database, db_settings)
    a = await gen_a.__anext__()
    b = await gen_b.__anext__()
    try:
        assert a.services.metrics.registry is not b.services.metrics.registry
        await a.client.get("/healthz")
        text_b = (await b.client.get("/metrics")).text
        assert 'route="/healthz"' not in text_b
    finally:
        for gen in (gen_a, gen_b):
            await gen.aclose()
