"""Webhook targets and the delivery outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sipscribe.store import webhooks
from sipscribe.store.tenants import create_tenant

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def tenant(session):
    return await create_tenant(session, name="acme")


async def test_targets_crud_is_tenant_scoped(session, tenant) -> None:
    other = await create_tenant(session, name="globex")
    target = await webhooks.create_webhook_target(
        session,
        tenant_id=tenant.id,
        url="https://hooks.example/sipscribe",
        secret="whsec_1",
        events=["utterance.created", "call.ended", "call.ended"],
    )
    assert target.events == ["call.ended", "utterance.created"]
    assert (
        await webhooks.get_webhook_target(session, target_id=target.id, tenant_id=other.id) is None
    )
    updated = await webhooks.update_webhook_target(
        session, target_id=target.id, tenant_id=tenant.id, enabled=False, events=[]
    )
    assert (updated.enabled, updated.events) == (False, [])
    assert (
        await webhooks.update_webhook_target(
            session, target_id=target.id, tenant_id=other.id, enabled=True
        )
        is None
    )
    assert (
        await webhooks.delete_webhook_target(session, target_id=target.id, tenant_id=other.id)
        is False
    )
    assert (
        await webhooks.delete_webhook_target(session, target_id=target.id, tenant_id=tenant.id)
        is True
    )
    assert await webhooks.list_webhook_targets(session, tenant_id=tenant.id) == []


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("ftp://x/y", "s", "webhook URL 'ftp://x/y' is not an absolute http(s) URL"),
        ("/relative", "s", "webhook URL '/relative' is not an absolute http(s) URL"),
        ("https://x/y", "", "webhook signing secret is empty"),
    ],
)
async def test_target_validation(session, tenant, url: str, secret: str, message: str) -> None:
    with pytest.raises(webhooks.WebhookTargetError) as info:
        await webhooks.create_webhook_target(session, tenant_id=tenant.id, url=url, secret=secret)
    assert str(info.value) == message


async def test_enqueue_fans_out_to_subscribed_enabled_targets_once(session, tenant) -> None:
    everything = await webhooks.create_webhook_target(
        session, tenant_id=tenant.id, url="https://a.example/", secret="s"
    )
    only_calls = await webhooks.create_webhook_target(
        session, tenant_id=tenant.id, url="https://b.example/", secret="s", events=["call.ended"]
    )
    await webhooks.create_webhook_target(
        session, tenant_id=tenant.id, url="https://c.example/", secret="s", enabled=False
    )
    queued = await webhooks.enqueue_event(
        session,
        tenant_id=tenant.id,
        event_type="utterance.created",
        payload={"text": "hi"},
        idempotency_key="utt-1",
        now=NOW,
    )
    assert [d.target_id for d in queued] == [everything.id]
    again = await webhooks.enqueue_event(
        session,
        tenant_id=tenant.id,
        event_type="utterance.created",
        payload={"text": "hi"},
        idempotency_key="utt-1",
        now=NOW,
    )
    assert [d.id for d in again] == [queued[0].id]
    ended = await webhooks.enqueue_event(
        session,
        tenant_id=tenant.id,
        event_type="call.ended",
        payload={},
        idempotency_key="call-1",
        now=NOW,
    )
    assert sorted(d.target_id for d in ended) == sorted([everything.id, only_calls.id])
    assert len(await webhooks.list_deliveries(session, tenant_id=tenant.id)) == 3


async def test_retry_cycle(session, tenant) -> None:
    await webhooks.create_webhook_target(
        session, tenant_id=tenant.id, url="https://a.example/", secret="s"
    )
    (delivery,) = await webhooks.enqueue_event(
        session, tenant_id=tenant.id, event_type="e", payload={}, idempotency_key="k", now=NOW
    )
    assert [d.id for d in await webhooks.due_deliveries(session, now=NOW)] == [delivery.id]
    retry_at = NOW + timedelta(seconds=30)
    failed = await webhooks.record_delivery_failure(
        session, delivery_id=delivery.id, error="HTTP 503", next_attempt_at=retry_at
    )
    assert (failed.state, failed.attempts, failed.last_error) == ("pending", 1, "HTTP 503")
    assert await webhooks.due_deliveries(session, now=NOW + timedelta(seconds=29)) == []
    assert len(await webhooks.due_deliveries(session, now=retry_at)) == 1
    done = await webhooks.record_delivery_success(session, delivery_id=delivery.id, now=retry_at)
    assert (done.state, done.attempts, done.delivered_at, done.last_error) == (
        "delivered",
        2,
        retry_at,
        None,
    )
    assert await webhooks.due_deliveries(session, now=retry_at + timedelta(days=1)) == []
    loaded = await webhooks.get_delivery(session, delivery_id=delivery.id, tenant_id=tenant.id)
    assert loaded.state == "delivered"


async def test_giving_up(session, tenant) -> None:
    await webhooks.create_webhook_target(
        session, tenant_id=tenant.id, url="https://a.example/", secret="s"
    )
    (delivery,) = await webhooks.enqueue_event(
        session, tenant_id=tenant.id, event_type="e", payload={}, idempotency_key="k", now=NOW
    )
    gone = await webhooks.record_delivery_failure(
        session, delivery_id=delivery.id, error="x" * 5000, next_attempt_at=None
    )
    assert (gone.state, len(gone.last_error)) == ("failed", 2000)
    failed = await webhooks.list_deliveries(session, tenant_id=tenant.id, state="failed")
    assert [d.id for d in failed] == [delivery.id]
    assert await webhooks.due_deliveries(session, now=NOW + timedelta(days=9)) == []
    other = await create_tenant(session, name="globex")
    assert await webhooks.get_delivery(session, delivery_id=delivery.id, tenant_id=other.id) is None
