"""The FastAPI application factory.

``create_app`` builds the app without a lifespan: the composition root (``sipscribe.app``)
opens the database, wires the real ``TranscriptionRunner`` and ``SummaryEngine`` into an
``AppServices``, sets ``services.ready`` when everything runs, and closes things on the way out.
Routes reach the services through ``app.state.services`` and the dependencies in ``deps.py``,
which tests can also replace with ``app.dependency_overrides``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from sipscribe import __version__
from sipscribe.api.errors import index_route_methods, install_error_handlers
from sipscribe.api.middleware import RequestContextMiddleware
from sipscribe.api.options import ApiOptions
from sipscribe.api.routes import ROUTERS, include_routers
from sipscribe.api.services import AppServices
from sipscribe.config import Settings

DESCRIPTION = """\
Calls recorded over SIPREC or uploaded, their transcriptions and summaries.

**Authentication**: `Authorization: Bearer <key>` or `api-key: <key>`, with a key from
`sipscribe keys create`. Each route names the scope it needs; `admin` implies all.

**Rate limits**: per key, per minute, set per tenant; every authenticated response carries
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the window
resets). Over the limit: 429 with `Retry-After`. Counters are kept per server process.

**Responses**: successes are enveloped as `{"status", "request_id", "timestamp", "data"}`;
errors are `{"error": {"statusCode", "name", "message", "requestId"}}`. Every response has an
`X-Request-Id` header.
"""


def create_app(
    settings: Settings,
    *,
    services: AppServices | None = None,
    options: ApiOptions | None = None,
    extra_routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """The HTTP API. ``services`` defaults to an empty ``AppServices`` (database not open yet,
    so data routes answer 503 until the caller sets ``app.state.services.database``)."""
    services = services if services is not None else AppServices()
    options = options if options is not None else ApiOptions.from_settings(settings)
    app = FastAPI(
        title="sipscribe",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.services = services
    app.state.api_options = options
    install_error_handlers(app)
    extra_routers = list(extra_routers)
    include_routers(app, extra_routers)
    app.state.route_methods = index_route_methods([*app.router.routes, *ROUTERS, *extra_routers])
    app.add_middleware(
        RequestContextMiddleware,
        metrics=services.metrics,
        max_body_bytes=options.max_json_body_bytes,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = use_error_format(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def use_error_format(schema: dict[str, Any]) -> dict[str, Any]:
    """Document validation failures as what we send (400, error format), not FastAPI's 422."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not responses or "422" not in responses:
                continue
            del responses["422"]
            responses.setdefault(
                "400",
                {
                    "description": "BadRequestError",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                        }
                    },
                },
            )
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
