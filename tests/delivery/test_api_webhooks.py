"""The ``/api/v2/webhooks`` routes (webhooks.py), on both database backends."""

from __future__ import annotations

import httpx

from sipscribe.api.metrics import Metrics
from sipscribe.delivery.service import DeliveryService
from sipscribe.store import webhooks as webhook_store

from .certs import issue, make_ca
from .helpers import tenant

BASE = "/api/v2/webhooks"


async def create(api, body: dict, **kw) -> httpx.Response:
    return await api.client.post(BASE, json=body, headers=await api.headers(**kw))


async def test_create_returns_the_secret_once_then_masks_it(delivery_api) -> None:
    response = await create(
        delivery_api,
        {
            "url": "https://hooks.example.com/calls",
            "events": ["transcript", "bundle"],
            "format": "vcon",
            "realtime": {"policy": "at_least_once", "max_age_s": 600},
            "auth": {"type": "header", "header": "X-Api-Key", "value": "k3y-value"},
        },
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["signing_secret"].startswith("whsec_") and len(data["signing_secret"]) > 30
    assert data["secret"] == "********"
    assert data["auth"] == {"type": "header", "header": "X-Api-Key", "value": "********"}
    assert data["realtime"] == {"policy": "at_least_once", "max_age_s": 600.0, "max_queue": 1000}
    assert data["stats"] is None
    assert response.headers["location"] == f"{BASE}/{data['id']}"

    listed = await delivery_api.client.get(BASE, headers=await delivery_api.headers())
    (item,) = listed.json()["data"]
    assert "signing_secret" not in item
    assert "k3y-value" not in listed.text and data["signing_secret"] not in listed.text
    one = await delivery_api.client.get(
        f"{BASE}/{data['id']}", headers=await delivery_api.headers()
    )
    assert one.json()["data"]["events"] == ["bundle", "transcript"]


async def test_validation_errors_use_the_error_format(delivery_api) -> None:
    cases = [
        ({"url": "ftp://x"}, "webhook URL 'ftp://x' is not an absolute http(s) URL"),
        ({"url": "https://h.example", "events": ["nope"]}, "body.events.0: Input should be"),
        ({"url": "https://h.example", "timeout_s": 0}, "body.timeout_s: Input should be greater"),
        ({"url": "https://h.example", "secret": "short"}, "body.secret: String should have"),
        ({"url": "https://h.example", "tls": {"ca_pem": "junk"}}, "tls.ca_pem is not a PEM"),
        (
            {"url": "https://10.0.0.5/hook"},
            "webhook URL 'https://10.0.0.5/hook': address 10.0.0.5 is private; the tenant "
            "setting allow_private_webhooks is off",
        ),
    ]
    for body, message in cases:
        response = await create(delivery_api, body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["name"] == "BadRequestError"
        assert message in error["message"], (message, error["message"])


async def test_private_literal_allowed_when_the_tenant_allows(delivery_api) -> None:
    await tenant(delivery_api.database, "acme", allow_private_webhooks=True)
    response = await create(delivery_api, {"url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 201


async def test_scopes_and_tenants(delivery_api) -> None:
    created = await create(delivery_api, {"url": "https://h.example/x"})
    target_id = created.json()["data"]["id"]
    read_only = await delivery_api.headers(scopes=("webhooks.read",))
    assert (await delivery_api.client.get(BASE, headers=read_only)).status_code == 200
    denied = await delivery_api.client.post(
        BASE, json={"url": "https://h.example"}, headers=read_only
    )
    assert denied.status_code == 403
    assert "webhooks.write" in denied.json()["error"]["message"]
    other = await delivery_api.headers(tenant="globex")
    missing = await delivery_api.client.get(f"{BASE}/{target_id}", headers=other)
    assert missing.status_code == 404
    assert (await delivery_api.client.get(BASE, headers=other)).json()["data"] == []


async def test_patch_keeps_masked_secrets_and_merges(delivery_api) -> None:
    ca, ca_cert, ca_key = make_ca()
    client = issue(ca_cert, ca_key, "client", server=False)
    created = await create(
        delivery_api,
        {
            "url": "https://h.example/x",
            "auth": {
                "type": "oauth2",
                "token_url": "https://idp.example/token",
                "client_id": "me",
                "client_secret": "oauth-secret",
            },
            "tls": {
                "ca_pem": ca.cert,
                "client_cert_pem": client.cert,
                "client_key_pem": client.key,
            },
        },
    )
    assert created.status_code == 201, created.text
    shown = created.json()["data"]
    target_id = shown["id"]
    headers = await delivery_api.headers()
    patched = await delivery_api.client.patch(
        f"{BASE}/{target_id}",
        json={"auth": shown["auth"], "timeout_s": 2.5, "events": ["bundle"]},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    data = patched.json()["data"]
    assert data["timeout_s"] == 2.5 and data["events"] == ["bundle"]
    assert data["tls"]["client_key_pem"] == "********"
    async with delivery_api.database.session() as s:
        record = await webhook_store.get_webhook_target(
            s, target_id=target_id, tenant_id=(await tenant(delivery_api.database))
        )
    assert record.options["auth"]["client_secret"] == "oauth-secret"
    assert record.options["tls"]["client_key_pem"] == client.key
    cleared = await delivery_api.client.patch(
        f"{BASE}/{target_id}", json={"auth": None}, headers=headers
    )
    assert cleared.json()["data"]["auth"] is None
    bad = await delivery_api.client.patch(
        f"{BASE}/{target_id}",
        json={"auth": {"type": "header", "header": "X-K", "value": "********"}},
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "auth.value: masked value with no stored secret"


async def test_delete(delivery_api) -> None:
    created = await create(delivery_api, {"url": "https://h.example/x"})
    target_id = created.json()["data"]["id"]
    headers = await delivery_api.headers()
    assert (
        await delivery_api.client.delete(f"{BASE}/{target_id}", headers=headers)
    ).status_code == 204
    assert (
        await delivery_api.client.delete(f"{BASE}/{target_id}", headers=headers)
    ).status_code == 404


async def test_deliveries_dead_letters_and_redeliver(delivery_api) -> None:
    created = await create(delivery_api, {"url": "https://h.example/x"})
    target_id = created.json()["data"]["id"]
    tenant_id = await tenant(delivery_api.database)
    async with delivery_api.database.session() as s:
        (row,) = await webhook_store.add_deliveries(
            s,
            tenant_id=tenant_id,
            event_type="bundle",
            payloads={target_id: {"type": "bundle"}},
            idempotency_key="bundle:c1",
            call_id="c1",
        )
        await s.commit()
        await webhook_store.record_delivery_failure(
            s, delivery_id=row.id, error="POST answered 500", next_attempt_at=None
        )
    headers = await delivery_api.headers()
    dead = await delivery_api.client.get(
        f"{BASE}/{target_id}/deliveries", params={"state": "failed"}, headers=headers
    )
    (item,) = dead.json()["data"]
    assert item["id"] == row.id and item["state"] == "failed" and item["attempts"] == 1
    assert item["last_error"] == "POST answered 500" and item["call_id"] == "c1"

    resumed: list[tuple[str, str | None]] = []

    class Spy(DeliveryService):
        def resume(self, target_id: str, call_id: str | None) -> None:
            resumed.append((target_id, call_id))

    delivery_api.app.state.delivery = Spy(delivery_api.database, None, Metrics())
    again = await delivery_api.client.post(
        f"{BASE}/{target_id}/deliveries/{row.id}/redeliver", headers=headers
    )
    assert again.status_code == 202, again.text
    assert again.json()["data"]["state"] == "pending"
    assert again.json()["data"]["expires_at"] is not None
    assert resumed == [(target_id, "c1")]
    twice = await delivery_api.client.post(
        f"{BASE}/{target_id}/deliveries/{row.id}/redeliver", headers=headers
    )
    assert twice.status_code == 409
    missing = await delivery_api.client.post(
        f"{BASE}/{target_id}/deliveries/nope/redeliver", headers=headers
    )
    assert missing.status_code == 404
    stats = (await delivery_api.client.get(f"{BASE}/{target_id}", headers=headers)).json()
    assert stats["data"]["stats"]["delivered"] == 0
