"""Dependencies: services, database session, authentication, scopes, rate limiting.

Authentication order, and what each failure answers:

1. no key in ``Authorization: Bearer <key>`` nor ``api-key: <key>`` → 401
2. unknown, malformed or revoked key → 401
3. the key's window is full (per key, limit per tenant) → 429 with ``Retry-After``
4. the key lacks the route's scope → 403

Rate limiting comes before the scope check so that a client probing with the wrong scope is
still throttled. The decision is left on ``request.state.rate_limit``; the request-context
middleware turns it into ``X-RateLimit-*`` headers on whatever response follows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.api.errors import ApiError
from sipscribe.api.options import ApiOptions
from sipscribe.api.services import AppServices
from sipscribe.config import Settings
from sipscribe.store import keys
from sipscribe.store.tenants import TenantSettings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer ssk_…` with an API key from `sipscribe keys create`",
)
_api_key_header = APIKeyHeader(
    name="api-key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same API key in an `api-key` header",
)


def get_services(request: Request) -> AppServices:
    return request.app.state.services  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_options(request: Request) -> ApiOptions:
    return request.app.state.api_options  # type: ignore[no-any-return]


ServicesDep = Annotated[AppServices, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
OptionsDep = Annotated[ApiOptions, Depends(get_options)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    """A session for this request, closed afterwards; 503 while the database is not open."""
    if services.database is None:
        raise ApiError(503, "The database is not ready yet")
    async with services.database.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key and its tenant, with the key's scopes."""

    key_id: str
    tenant_id: str
    scopes: frozenset[str]

    def can(self, scope: keys.Scope) -> bool:
        return keys.has_scope(self.scopes, scope)


async def authenticate(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Steps 1–3 above; see the module docstring."""
    secret = bearer.credentials if bearer is not None else header_key
    challenge = {"WWW-Authenticate": 'Bearer realm="sipscribe"'}
    if not secret:
        raise ApiError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>' or an 'api-key' header",
            headers=challenge,
        )
    key = await keys.authenticate(session, secret=secret.strip())
    if key is None:
        raise ApiError(401, "API key is not valid or has been revoked", headers=challenge)
    principal = Principal(key_id=key.id, tenant_id=key.tenant_id, scopes=frozenset(key.scopes))
    limit = TenantSettings.of(key.tenant).rate_limit_per_minute
    # End the read transaction: a long upload must not hold a pooled connection open.
    await session.commit()
    decision = services.rate_limiter.hit(key.id, limit=limit, now=services.clock())
    request.state.rate_limit = decision
    if not decision.allowed:
        raise ApiError(
            429,
            f"Rate limit of {limit} requests per minute exceeded;"
            f" retry in {decision.retry_after} s",
            headers={"Retry-After": str(decision.retry_after)},
        )
    request.state.principal = principal
    return principal


def require_scope(scope: keys.Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates and then demands ``scope`` (``admin`` always passes)."""

    async def dependency(
        principal: Annotated[Principal, Depends(authenticate)],
    ) -> Principal:
        if not principal.can(scope):
            raise ApiError(403, f"This API key lacks the scope {scope.value!r}")
        return principal

    dependency.__name__ = f"require_{scope.value.replace('.', '_')}"
    return dependency


def require_json_body(request: Request) -> None:
    """415 unless a request with a body says it is JSON (FastAPI would otherwise guess)."""
    has_body = request.headers.get("content-length", "0") not in ("", "0") or (
        "transfer-encoding" in request.headers
    )
    if not has_body:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = media_type or "none"
        raise ApiError(415, f"Content-Type must be application/json, got {shown}")


JsonBody = Depends(require_json_body)
