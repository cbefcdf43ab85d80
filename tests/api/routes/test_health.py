"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from ..conftest import Api


async def test_healthz_follows_the_readiness_flag(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    api.services.ready = False
    response = await api.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"]["name"] == "ServiceUnavailableError"
    assert response.json()["error"]["message"] == "sipscribe is not ready"


async def test_metrics_exposes_standard_and_http_metrics(api: Api) -> None:
    api.services.metrics.active_calls.set(3)
    await api.client.get("/api/v2/calls", headers=await api.headers())
    await api.client.get("/nowhere")
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "sipscribe_active_calls 3.0" in lines
    assert 'sipscribe_http_requests_total{method="GET",route="/api/v2/calls",status="200"} 1.0' in (
        lines
    )
    assert 'sipscribe_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in lines
    assert "sipscribe_utterance_latency_seconds_count 0.0" in lines
