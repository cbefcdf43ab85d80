"""One error format for every failure the API can answer.

Every error response, whether a route raised it, routing failed (404, 405), validation failed,
the body was too large or of the wrong type, or the server broke, has this body::

    {"error": {"statusCode": 404, "name": "NotFoundError",
               "message": "No call 0f6c…", "requestId": "5b1f…"}}

``ApiError`` subclasses Starlette's ``HTTPException`` so that FastAPI lets it through untouched
even when it is raised while the request body is being read (the body size limit does that).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route, compile_path
from starlette.types import Scope

log = logging.getLogger(__name__)

ERROR_NAMES: dict[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    406: "NotAcceptableError",
    409: "ConflictError",
    410: "GoneError",
    411: "LengthRequiredError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}


def error_name(status: int) -> str:
    """The ``name`` for a status: the table above, else by class (4xx/5xx)."""
    if status in ERROR_NAMES:
        return ERROR_NAMES[status]
    return "ClientError" if 400 <= status < 500 else "ServerError"


class ApiError(StarletteHTTPException):
    """An error answer: status, a message for the client, optional name and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        name: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=dict(headers or {}))
        self.name = name or error_name(status)
        self.message = message


def request_id_of(scope: Scope) -> str:
    """The id the request-context middleware gave this request ("" outside it)."""
    state = scope.get("state") or {}
    value = state.get("request_id") if isinstance(state, Mapping) else None
    return value or ""


def error_body(status: int, message: str, *, request_id: str, name: str | None = None) -> dict:
    return {
        "error": {
            "statusCode": status,
            "name": name or error_name(status),
            "message": message,
            "requestId": request_id,
        }
    }


def error_response(
    scope: Scope,
    status: int,
    message: str,
    *,
    name: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, request_id=request_id_of(scope), name=name),
        status_code=status,
        headers=dict(headers or {}),
    )


def _default_message(status: int, detail: Any, request: Request) -> str:
    if isinstance(detail, str) and detail:
        if status == 404 and detail == "Not Found":
            return f"No route matches {request.url.path}"
        if status == 405 and detail == "Method Not Allowed":
            return f"Method {request.method} is not allowed on {request.url.path}"
        return detail
    return error_name(status)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """``"query.limit: Input should be less than or equal to 100"``; several joined by "; "."""
    parts: list[str] = []
    for error in errors:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
        message = str(error.get("msg", "is not valid"))
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts) or "request is not valid"


RouteMethods = list[tuple[re.Pattern[str], frozenset[str]]]


def index_route_methods(routes: Iterable[BaseRoute | APIRouter]) -> RouteMethods:
    """(path regex, methods) for every route, descending into routers that hold routes."""
    index: RouteMethods = []
    for route in routes:
        nested = getattr(route, "routes", None)
        if nested is not None and not isinstance(route, Route):
            index.extend(index_route_methods(nested))
            continue
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and methods:
            regex, _, _ = compile_path(path)
            index.append((regex, frozenset(methods)))
    return index


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path, from the index ``create_app`` built.

    Starlette answers 405 with the methods of the first route whose path matched, but each of
    our methods is its own route, so its ``Allow`` would miss the others.
    """
    index: RouteMethods = getattr(request.app.state, "route_methods", [])
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for regex, route_methods in index:
        if regex.match(path):
            methods.update(route_methods)
    return sorted(methods)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    name = exc.name if isinstance(exc, ApiError) else None
    message = _default_message(exc.status_code, exc.detail, request)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
    return error_response(request.scope, exc.status_code, message, name=name, headers=headers)


async def _validation_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request.scope, 400, describe_validation_errors(exc.errors()))


def install_error_handlers(app: FastAPI) -> None:
    """Route every HTTP and validation error through the one format.

    Unexpected exceptions are turned into a 500 by ``RequestContextMiddleware``, which sits
    outside every other layer and so also sees errors raised by other middleware.
    """
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_exception)
