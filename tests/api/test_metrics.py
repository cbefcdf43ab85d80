"""The standard Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from sipscribe.api.metrics import Metrics


def test_standard_metrics_render() -> None:
    metrics = Metrics()
    metrics.active_calls.inc(2)
    metrics.active_streams.set(4)
    metrics.rtp_packets.inc(500)
    metrics.rtp_packets_lost.inc(3)
    metrics.rtp_jitter.set(0.012)
    metrics.rtp_jitter_histogram.observe(0.012)
    metrics.asr_queue_depth.set(1)
    metrics.utterance_latency.observe(1.2)
    metrics.webhook_deliveries.inc()
    metrics.webhook_failures.inc()
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for line in (
        "sipscribe_active_calls 2.0",
        "sipscribe_active_streams 4.0",
        "sipscribe_rtp_packets_total 500.0",
        "sipscribe_rtp_packets_lost_total 3.0",
        "sipscribe_rtp_jitter_seconds 0.012",
        "sipscribe_asr_queue_depth 1.0",
        'sipscribe_utterance_latency_seconds_bucket{le="1.5"} 1.0',
        'sipscribe_utterance_latency_seconds_bucket{le="10.0"} 1.0',
        'sipscribe_rtp_jitter_distribution_seconds_bucket{le="0.02"} 1.0',
        "sipscribe_webhook_deliveries_total 1.0",
        "sipscribe_webhook_failures_total 1.0",
    ):
        assert line in text.splitlines(), line


def test_instances_do_not_share_state_and_accept_more_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.active_calls.inc()
    assert "sipscribe_active_calls 0.0" in second.render()[0].decode().splitlines()
    registry = CollectorRegistry()
    custom = Metrics(registry)
    Counter("sipscribe_sip_requests", "SIP requests.", registry=custom.registry).inc()
    assert "sipscribe_sip_requests_total 1.0" in custom.render()[0].decode().splitlines()
