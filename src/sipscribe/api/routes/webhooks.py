"""``/api/v2/webhooks``: a tenant's webhook targets, their outbox and its dead letters.

A target is a URL, the events it wants (``transcript``, ``call.started``, ``call.ended``,
``summary.ready``, ``bundle``, ``dtmf``; none listed = all), a signing secret, and options
(bundle format, realtime policy, timeout, max in flight, authentication, TLS). The signing
secret is generated unless given and shown once, in the creation response; every secret is
masked (``********``) afterwards, and sending ``********`` back in a PATCH keeps the stored one.

The running ``DeliveryService`` is reached through ``app.state.delivery`` (set by ``app.py``):
changes invalidate its target cache, reads include its per-target counters, and a redelivery
wakes the target's queue. Without it the routes still manage the stored targets and outbox.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from sipscribe.api.deps import JsonBody, Principal, SessionDep, require_scope
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import AUTH_ERRORS, Envelope, envelope, error_responses
from sipscribe.delivery.errors import ForbiddenAddress, TargetConfigError
from sipscribe.delivery.ssrf import check_address, literal_address
from sipscribe.delivery.targets import (
    MASK,
    REALTIME_EVENTS,
    RealtimeOptions,
    TargetAuth,
    TargetOptions,
    TlsOptions,
    allows_private,
    check_url,
    masked_options,
    merge_secrets,
    parse_options,
)
from sipscribe.store import tenants as tenant_store
from sipscribe.store import webhooks as webhook_store
from sipscribe.store.keys import Scope
from sipscribe.store.models import DeliveryRecord, DeliveryState, WebhookTargetRecord

router = APIRouter(prefix="/api/v2/webhooks", tags=["webhooks"])

EventType = Literal["transcript", "call.started", "call.ended", "summary.ready", "bundle", "dtmf"]
TargetId = Annotated[str, PathParam(min_length=1, max_length=64, description="The target's id")]
DeliveryId = Annotated[str, PathParam(min_length=1, max_length=64, description="The delivery")]
SECRET_BYTES = 32


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookIn(_Body):
    url: str = Field(min_length=1, max_length=2048, examples=["https://hooks.example.com/calls"])
    events: list[EventType] = Field(default_factory=list, description="Empty: every event.")
    enabled: bool = True
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=255,
        description="HMAC signing secret; generated (and returned once) when absent.",
    )
    format: Literal["json", "vcon"] = "json"
    realtime: RealtimeOptions = RealtimeOptions()
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    max_in_flight: int = Field(default=4, ge=1, le=64)
    bundle_max_age_s: float = Field(default=86400.0, gt=0, le=30 * 86400)
    auth: TargetAuth | None = None
    tls: TlsOptions | None = None


class WebhookPatch(_Body):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[EventType] | None = None
    enabled: bool | None = None
    secret: str | None = Field(default=None, min_length=16, max_length=255)
    format: Literal["json", "vcon"] | None = None
    realtime: RealtimeOptions | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=60)
    max_in_flight: int | None = Field(default=None, ge=1, le=64)
    bundle_max_age_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    auth: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    secret: str = Field(description="Always masked.")
    format: str
    realtime: dict[str, Any]
    timeout_s: float
    max_in_flight: int
    bundle_max_age_s: float
    auth: dict[str, Any] | None
    tls: dict[str, Any] | None
    created_at: datetime
    stats: dict[str, Any] | None = Field(
        description="Counters since the delivery service started; null when it is not running."
    )


class WebhookCreated(WebhookOut):
    signing_secret: str = Field(description="The signing secret, shown this once.")


class DeliveryOut(BaseModel):
    id: str
    target_id: str
    event_type: str
    call_id: str | None
    idempotency_key: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, d: DeliveryRecord) -> DeliveryOut:
        return cls(
            id=d.id,
            target_id=d.target_id,
            event_type=d.event_type,
            call_id=d.call_id,
            idempotency_key=d.idempotency_key,
            state=d.state,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            expires_at=d.expires_at,
            last_error=d.last_error,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
        )


def _service(request: Request) -> Any:
    return getattr(request.app.state, "delivery", None)


def _out(request: Request, target: WebhookTargetRecord) -> dict[str, Any]:
    options = parse_options(target.options)
    shown = masked_options(options)
    service = _service(request)
    return {
        "id": target.id,
        "url": target.url,
        "events": list(target.events or []),
        "enabled": target.enabled,
        "secret": MASK,
        **shown,
        "created_at": target.created_at,
        "stats": service.stats(target.id) if service is not None else None,
    }


async def _check_target_url(session: Any, tenant_id: str, url: str) -> str:
    """400 unless an absolute http(s) URL; an IP literal in a private range needs the tenant's
    ``allow_private_webhooks`` (host names are checked when connecting, every time)."""
    try:
        check_url(url)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    address = literal_address(urlsplit(url).hostname or "")
    if address is not None:
        tenant = await tenant_store.get_tenant(session, tenant_id=tenant_id)
        try:
            check_address(str(address), allow_private=allows_private(tenant and tenant.settings))
        except ForbiddenAddress as exc:
            raise ApiError(400, f"webhook URL {url!r}: {exc}") from None
    return url


def _options(raw: dict[str, Any]) -> TargetOptions:
    try:
        return parse_options(raw)
    except TargetConfigError as exc:
        raise ApiError(400, str(exc)) from None


def _invalidate(request: Request, tenant_id: str) -> None:
    service = _service(request)
    if service is not None:
        service.invalidate(tenant_id)


async def _target_or_404(session: Any, target_id: str, tenant_id: str) -> WebhookTargetRecord:
    target = await webhook_store.get_webhook_target(
        session, target_id=target_id, tenant_id=tenant_id
    )
    if target is None:
        raise ApiError(404, f"No webhook target {target_id}")
    return target


ReadKey = Annotated[Principal, Depends(require_scope(Scope.WEBHOOKS_READ))]
WriteKey = Annotated[Principal, Depends(require_scope(Scope.WEBHOOKS_WRITE))]


@router.get(
    "",
    response_model=Envelope[list[WebhookOut]],
    summary="List the tenant's webhook targets",
    responses=error_responses(*AUTH_ERRORS),
)
async def list_webhooks(
    request: Request, principal: ReadKey, session: SessionDep
) -> Envelope[list[WebhookOut]]:
    targets = await webhook_store.list_webhook_targets(session, tenant_id=principal.tenant_id)
    return envelope(request, [WebhookOut(**_out(request, t)) for t in targets])


@router.post(
    "",
    status_code=201,
    response_model=Envelope[WebhookCreated],
    summary="Add a webhook target",
    responses=error_responses(400, 415, *AUTH_ERRORS),
)
async def create_webhook(
    request: Request,
    response: Response,
    principal: WriteKey,
    session: SessionDep,
    _json: Annotated[None, JsonBody],
    body: WebhookIn,
) -> Envelope[WebhookCreated]:
    url = await _check_target_url(session, principal.tenant_id, body.url)
    raw = body.model_dump(
        mode="json",
        exclude={"url", "events", "enabled", "secret"},
        exclude_none=True,
    )
    options = _options(raw)
    secret = body.secret or "whsec_" + secrets.token_urlsafe(SECRET_BYTES)
    target = await webhook_store.create_webhook_target(
        session,
        tenant_id=principal.tenant_id,
        url=url,
        secret=secret,
        events=body.events,
        enabled=body.enabled,
        options=options.model_dump(mode="json", exclude_none=True),
    )
    _invalidate(request, principal.tenant_id)
    response.headers["Location"] = f"{router.prefix}/{target.id}"
    data = WebhookCreated(**_out(request, target), signing_secret=secret)
    return envelope(request, data, status=201)


@router.get(
    "/{target_id}",
    response_model=Envelope[WebhookOut],
    summary="Read a webhook target (secrets masked) with its delivery counters",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def read_webhook(
    request: Request, target_id: TargetId, principal: ReadKey, session: SessionDep
) -> Envelope[WebhookOut]:
    target = await _target_or_404(session, target_id, principal.tenant_id)
    return envelope(request, WebhookOut(**_out(request, target)))


@router.patch(
    "/{target_id}",
    response_model=Envelope[WebhookOut],
    summary="Change a webhook target; omitted fields keep their value",
    responses=error_responses(400, 404, 415, *AUTH_ERRORS),
)
async def update_webhook(
    request: Request,
    target_id: TargetId,
    principal: WriteKey,
    session: SessionDep,
    _json: Annotated[None, JsonBody],
    body: WebhookPatch,
) -> Envelope[WebhookOut]:
    target = await _target_or_404(session, target_id, principal.tenant_id)
    url = await _check_target_url(session, principal.tenant_id, body.url) if body.url else None
    current = parse_options(target.options)
    changed = body.model_dump(
        mode="json",
        include={
            "format",
            "realtime",
            "timeout_s",
            "max_in_flight",
            "bundle_max_age_s",
            "auth",
            "tls",
        },
        exclude_unset=True,
    )
    options: TargetOptions | None = None
    if changed:
        merged = {**current.model_dump(mode="json", exclude_none=True), **changed}
        for name in ("auth", "tls"):
            if name in changed and changed[name] is None:
                merged.pop(name, None)
        try:
            merged = merge_secrets(merged, current)
        except TargetConfigError as exc:
            raise ApiError(400, str(exc)) from None
        options = _options(merged)
    updated = await webhook_store.update_webhook_target(
        session,
        target_id=target_id,
        tenant_id=principal.tenant_id,
        url=url,
        secret=body.secret,
        events=body.events,
        enabled=body.enabled,
        options=None if options is None else options.model_dump(mode="json", exclude_none=True),
    )
    if updated is None:
        raise ApiError(404, f"No webhook target {target_id}")
    _invalidate(request, principal.tenant_id)
    if updated.enabled and body.enabled:
        service = _service(request)
        pending = await webhook_store.list_deliveries(
            session,
            tenant_id=principal.tenant_id,
            target_id=target_id,
            state=DeliveryState.PENDING,
            limit=1000,
        )
        if service is not None:
            for call_id in {d.call_id for d in pending}:
                service.resume(target_id, call_id)
    return envelope(request, WebhookOut(**_out(request, updated)))


@router.delete(
    "/{target_id}",
    status_code=204,
    summary="Remove a webhook target and its outbox",
    responses=error_responses(404, *AUTH_ERRORS),
)
async def delete_webhook(
    request: Request, target_id: TargetId, principal: WriteKey, session: SessionDep
) -> Response:
    if not await webhook_store.delete_webhook_target(
        session, target_id=target_id, tenant_id=principal.tenant_id
    ):
        raise ApiError(404, f"No webhook target {target_id}")
    _invalidate(request, principal.tenant_id)
    return Response(status_code=204)


@router.get(
    "/{target_id}/deliveries",
    response_model=Envelope[list[DeliveryOut]],
    summary="The target's outbox, newest first; state=failed is the dead-letter list",
    responses=error_responses(400, 404, *AUTH_ERRORS),
)
async def list_webhook_deliveries(
    request: Request,
    target_id: TargetId,
    principal: ReadKey,
    session: SessionDep,
    state: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Envelope[list[DeliveryOut]]:
    await _target_or_404(session, target_id, principal.tenant_id)
    rows = await webhook_store.list_deliveries(
        session, tenant_id=principal.tenant_id, target_id=target_id, state=state, limit=limit
    )
    return envelope(request, [DeliveryOut.of(d) for d in rows])


@router.post(
    "/{target_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=Envelope[DeliveryOut],
    summary="Queue a delivery again (a dead letter, or one the receiver lost)",
    responses=error_responses(404, 409, *AUTH_ERRORS),
)
async def redeliver(
    request: Request,
    target_id: TargetId,
    delivery_id: DeliveryId,
    principal: WriteKey,
    session: SessionDep,
) -> Envelope[DeliveryOut]:
    target = await _target_or_404(session, target_id, principal.tenant_id)
    delivery = await webhook_store.get_delivery(
        session, delivery_id=delivery_id, tenant_id=principal.tenant_id
    )
    if delivery is None or delivery.target_id != target_id:
        raise ApiError(404, f"No delivery {delivery_id} for webhook target {target_id}")
    if delivery.state == DeliveryState.PENDING.value:
        raise ApiError(409, f"Delivery {delivery_id} is already queued")
    if not target.enabled:
        raise ApiError(409, f"Webhook target {target_id} is disabled; enable it first")
    options = parse_options(target.options)
    max_age = (
        options.realtime.max_age_s
        if delivery.event_type in REALTIME_EVENTS
        else options.bundle_max_age_s
    )
    now = datetime.now(UTC)
    queued = await webhook_store.redeliver(
        session,
        delivery_id=delivery_id,
        tenant_id=principal.tenant_id,
        expires_at=now + timedelta(seconds=max_age),
        now=now,
    )
    assert queued is not None
    service = _service(request)
    if service is not None:
        service.resume(target_id, queued.call_id)
    return envelope(request, DeliveryOut.of(queued), status=202)
