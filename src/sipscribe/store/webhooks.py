"""Webhook targets and the delivery outbox.

An event becomes one ``DeliveryRecord`` per subscribed target, keyed by ``(target,
idempotency_key)`` so that enqueuing the same event twice (a retried pipeline step, a restart)
adds nothing. The delivery worker asks for ``due_deliveries`` and reports each outcome; the retry
schedule itself is the delivery layer's decision, passed in as ``next_attempt_at``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.models import (
    CallRecord,
    CallState,
    DeliveryRecord,
    DeliveryState,
    TenantRecord,
    WebhookTargetRecord,
    utcnow,
)

MAX_ERROR_LENGTH = 2000


class WebhookTargetError(ValueError):
    """A webhook target we cannot store (bad URL, empty secret)."""


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WebhookTargetError(f"webhook URL {url!r} is not an absolute http(s) URL")
    return url


async def create_webhook_target(
    session: AsyncSession,
    *,
    tenant_id: str,
    url: str,
    secret: str,
    events: Iterable[str] = (),
    enabled: bool = True,
    options: dict[str, Any] | None = None,
) -> WebhookTargetRecord:
    """Add a target and commit; an empty ``events`` subscribes to every event type.

    ``options`` is stored as given; ``sipscribe.delivery.targets`` validates it first."""
    if not secret:
        raise WebhookTargetError("webhook signing secret is empty")
    target = WebhookTargetRecord(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        url=_check_url(url),
        secret=secret,
        events=sorted(set(events)),
        enabled=enabled,
        options=dict(options or {}),
    )
    session.add(target)
    await session.commit()
    return target


async def get_webhook_target(
    session: AsyncSession, *, target_id: str, tenant_id: str
) -> WebhookTargetRecord | None:
    result = await session.execute(
        select(WebhookTargetRecord).where(
            WebhookTargetRecord.id == target_id, WebhookTargetRecord.tenant_id == tenant_id
        )
    )
    return result.scalar_one_or_none()


async def list_webhook_targets(
    session: AsyncSession,
    *,
    tenant_id: str,
    event_type: str | None = None,
    enabled_only: bool = False,
) -> list[WebhookTargetRecord]:
    """A tenant's targets, oldest first; with ``event_type``, only those subscribed to it."""
    query = select(WebhookTargetRecord).where(WebhookTargetRecord.tenant_id == tenant_id)
    if enabled_only:
        query = query.where(WebhookTargetRecord.enabled.is_(True))
    query = query.order_by(WebhookTargetRecord.created_at, WebhookTargetRecord.id)
    targets = list((await session.execute(query)).scalars())
    if event_type is not None:
        # JSON containment differs per backend; the list is short, so filter here.
        targets = [t for t in targets if not t.events or event_type in t.events]
    return targets


async def update_webhook_target(
    session: AsyncSession,
    *,
    target_id: str,
    tenant_id: str,
    url: str | None = None,
    secret: str | None = None,
    events: Iterable[str] | None = None,
    enabled: bool | None = None,
    options: dict[str, Any] | None = None,
) -> WebhookTargetRecord | None:
    """Change the given fields (None keeps one) and commit; None if no such target."""
    target = await get_webhook_target(session, target_id=target_id, tenant_id=tenant_id)
    if target is None:
        return None
    if url is not None:
        target.url = _check_url(url)
    if secret is not None:
        if not secret:
            raise WebhookTargetError("webhook signing secret is empty")
        target.secret = secret
    if events is not None:
        target.events = sorted(set(events))
    if enabled is not None:
        target.enabled = enabled
    if options is not None:
        # A new dict so SQLAlchemy sees the JSON column change.
        target.options = dict(options)
    await session.commit()
    return target


async def delete_webhook_target(session: AsyncSession, *, target_id: str, tenant_id: str) -> bool:
    """Remove a target (and its outbox entries) and commit; False if there was none."""
    target = await get_webhook_target(session, target_id=target_id, tenant_id=tenant_id)
    if target is None:
        return False
    await session.delete(target)
    await session.commit()
    return True


async def enqueue_event(
    session: AsyncSession,
    *,
    tenant_id: str,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str,
    now: datetime | None = None,
) -> list[DeliveryRecord]:
    """Queue an event for every enabled target subscribed to it and commit.

    Returns the deliveries for this event, including ones an earlier call with the same
    ``idempotency_key`` already queued (those are not duplicated).
    """
    now = now or utcnow()
    targets = await list_webhook_targets(
        session, tenant_id=tenant_id, event_type=event_type, enabled_only=True
    )
    deliveries: list[DeliveryRecord] = []
    for target in targets:
        existing = await _find_delivery(
            session, target_id=target.id, idempotency_key=idempotency_key
        )
        if existing is not None:
            deliveries.append(existing)
            continue
        delivery = DeliveryRecord(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            target_id=target.id,
            event_type=event_type,
            payload=payload,
            idempotency_key=idempotency_key,
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            delivered_at=None,
        )
        session.add(delivery)
        try:
            await session.commit()
        except IntegrityError:
            # Another writer queued the same event for this target between our read and write.
            await session.rollback()
            existing = await _find_delivery(
                session, target_id=target.id, idempotency_key=idempotency_key
            )
            if existing is None:
                raise
            delivery = existing
        deliveries.append(delivery)
    return deliveries


async def _find_delivery(
    session: AsyncSession, *, target_id: str, idempotency_key: str
) -> DeliveryRecord | None:
    result = await session.execute(
        select(DeliveryRecord).where(
            DeliveryRecord.target_id == target_id,
            DeliveryRecord.idempotency_key == idempotency_key,
        )
    )
    return result.scalar_one_or_none()


async def get_delivery(
    session: AsyncSession, *, delivery_id: str, tenant_id: str
) -> DeliveryRecord | None:
    result = await session.execute(
        select(DeliveryRecord)
        .where(DeliveryRecord.id == delivery_id, DeliveryRecord.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_deliveries(
    session: AsyncSession,
    *,
    tenant_id: str,
    target_id: str | None = None,
    state: DeliveryState | str | None = None,
    limit: int = 100,
) -> Sequence[DeliveryRecord]:
    """A tenant's outbox, newest first."""
    query = select(DeliveryRecord).where(DeliveryRecord.tenant_id == tenant_id)
    if target_id is not None:
        query = query.where(DeliveryRecord.target_id == target_id)
    if state is not None:
        query = query.where(DeliveryRecord.state == DeliveryState(state).value)
    query = query.order_by(DeliveryRecord.created_at.desc(), DeliveryRecord.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def due_deliveries(
    session: AsyncSession, *, now: datetime, limit: int = 100
) -> Sequence[DeliveryRecord]:
    """Pending deliveries whose next attempt is due, oldest due first, across all tenants."""
    result = await session.execute(
        select(DeliveryRecord)
        .where(
            DeliveryRecord.state == DeliveryState.PENDING.value,
            or_(DeliveryRecord.next_attempt_at.is_(None), DeliveryRecord.next_attempt_at <= now),
        )
        .order_by(DeliveryRecord.next_attempt_at, DeliveryRecord.created_at)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list(result.scalars())


async def record_delivery_success(
    session: AsyncSession, *, delivery_id: str, now: datetime | None = None
) -> DeliveryRecord | None:
    """Mark a delivery delivered (one more attempt) and commit."""
    delivery = await session.get(DeliveryRecord, delivery_id, populate_existing=True)
    if delivery is None:
        return None
    now = now or utcnow()
    delivery.attempts += 1
    delivery.state = DeliveryState.DELIVERED.value
    delivery.delivered_at = now
    delivery.next_attempt_at = None
    delivery.last_error = None
    await session.commit()
    return delivery


async def record_delivery_failure(
    session: AsyncSession,
    *,
    delivery_id: str,
    error: str,
    next_attempt_at: datetime | None,
) -> DeliveryRecord | None:
    """Count a failed attempt and commit: retried at ``next_attempt_at``, or failed for good
    when that is None."""
    delivery = await session.get(DeliveryRecord, delivery_id, populate_existing=True)
    if delivery is None:
        return None
    delivery.attempts += 1
    delivery.last_error = error[:MAX_ERROR_LENGTH]
    delivery.next_attempt_at = next_attempt_at
    if next_attempt_at is None:
        delivery.state = DeliveryState.FAILED.value
    await session.commit()
    return delivery


# -- the delivery service's outbox ---------------------------------------------------------
#
# The functions below do not commit unless they say so: the delivery service (and any caller
# that wants an event queued atomically with its own change) adds outbox entries inside its
# transaction and commits once.


async def add_deliveries(
    session: AsyncSession,
    *,
    tenant_id: str,
    event_type: str,
    payloads: dict[str, dict[str, Any]],
    idempotency_key: str,
    call_id: str | None = None,
    expires_at: dict[str, datetime | None] | None = None,
    now: datetime | None = None,
) -> list[DeliveryRecord]:
    """Queue one event for several targets (``payloads`` maps target id to its body, and
    ``expires_at`` to when it stops being retried) without committing; targets that already
    hold ``idempotency_key`` are skipped.

    Returns only the new entries, flushed so they have their ids.
    """
    if not payloads:
        return []
    now = now or utcnow()
    existing = set(
        (
            await session.execute(
                select(DeliveryRecord.target_id).where(
                    DeliveryRecord.idempotency_key == idempotency_key,
                    DeliveryRecord.target_id.in_(list(payloads)),
                )
            )
        ).scalars()
    )
    added: list[DeliveryRecord] = []
    for target_id, payload in payloads.items():
        if target_id in existing:
            continue
        delivery = DeliveryRecord(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            target_id=target_id,
            event_type=event_type,
            payload=payload,
            idempotency_key=idempotency_key,
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            created_at=now,
            delivered_at=None,
            call_id=call_id,
            expires_at=(expires_at or {}).get(target_id),
        )
        session.add(delivery)
        added.append(delivery)
    await session.flush()
    return added


async def pending_lanes(session: AsyncSession) -> list[tuple[str, str | None]]:
    """Every ``(target_id, call_id)`` with pending deliveries: what a restart must resume."""
    result = await session.execute(
        select(DeliveryRecord.target_id, DeliveryRecord.call_id)
        .where(DeliveryRecord.state == DeliveryState.PENDING.value)
        .distinct()
    )
    return [(row[0], row[1]) for row in result]


async def pending_in_lane(
    session: AsyncSession, *, target_id: str, call_id: str | None, limit: int = 100
) -> Sequence[DeliveryRecord]:
    """Pending deliveries of one call to one target in the order they were queued."""
    query = select(DeliveryRecord).where(
        DeliveryRecord.target_id == target_id,
        DeliveryRecord.state == DeliveryState.PENDING.value,
    )
    if call_id is None:
        query = query.where(DeliveryRecord.call_id.is_(None))
    else:
        query = query.where(DeliveryRecord.call_id == call_id)
    query = (
        query.order_by(DeliveryRecord.created_at, DeliveryRecord.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars())


async def redeliver(
    session: AsyncSession,
    *,
    delivery_id: str,
    tenant_id: str,
    expires_at: datetime | None,
    now: datetime | None = None,
) -> DeliveryRecord | None:
    """Put a delivery back in the queue (attempt count and error kept) and commit.

    Works on failed and delivered entries alike (a receiver may have lost what it acknowledged);
    None if there is no such delivery for the tenant.
    """
    delivery = await get_delivery(session, delivery_id=delivery_id, tenant_id=tenant_id)
    if delivery is None:
        return None
    delivery.state = DeliveryState.PENDING.value
    delivery.next_attempt_at = now or utcnow()
    delivery.expires_at = expires_at
    delivery.delivered_at = None
    await session.commit()
    return delivery


async def expire_delivery(
    session: AsyncSession, *, delivery_id: str, error: str
) -> DeliveryRecord | None:
    """Give up on a pending delivery without another attempt (it outlived its expiry) and
    commit."""
    delivery = await session.get(DeliveryRecord, delivery_id, populate_existing=True)
    if delivery is None:
        return None
    delivery.state = DeliveryState.FAILED.value
    delivery.next_attempt_at = None
    delivery.last_error = error[:MAX_ERROR_LENGTH]
    await session.commit()
    return delivery


async def tenant_of_call(session: AsyncSession, *, call_id: str) -> str | None:
    """The tenant a call belongs to, for events that did not say (no tenant check: internal)."""
    result = await session.execute(select(CallRecord.tenant_id).where(CallRecord.id == call_id))
    return result.scalar_one_or_none()


async def calls_awaiting_bundle(
    session: AsyncSession, *, ended_since: datetime, limit: int = 500
) -> list[tuple[str, str]]:
    """``(call_id, tenant_id)`` of calls ended since ``ended_since`` whose completion bundle
    was queued for no target yet (oldest first): what the delivery service re-checks on start.
    """
    queued = exists().where(
        and_(
            DeliveryRecord.call_id == CallRecord.id,
            DeliveryRecord.event_type == "bundle",
        )
    )
    result = await session.execute(
        select(CallRecord.id, CallRecord.tenant_id)
        .where(
            CallRecord.state != CallState.ACTIVE.value,
            CallRecord.ended_at.is_not(None),
            CallRecord.ended_at >= ended_since,
            ~queued,
        )
        .order_by(CallRecord.ended_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in result]


async def target_for_delivery(
    session: AsyncSession, *, target_id: str
) -> tuple[WebhookTargetRecord, dict[str, Any]] | None:
    """A target by id with its tenant's settings, for the delivery worker (which found the id
    in its own outbox, so no tenant check); None once the target is deleted."""
    result = await session.execute(
        select(WebhookTargetRecord, TenantRecord.settings)
        .join(TenantRecord, TenantRecord.id == WebhookTargetRecord.tenant_id)
        .where(WebhookTargetRecord.id == target_id)
        .execution_options(populate_existing=True)
    )
    row = result.first()
    if row is None:
        return None
    settings = row[1] if isinstance(row[1], dict) else {}
    return row[0], settings
