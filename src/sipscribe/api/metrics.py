"""Prometheus metrics every layer reports into, exposed at ``GET /metrics``.

One ``Metrics`` object per application, each with its own ``CollectorRegistry``, so two apps in
one process (tests) never clash over metric names. Layers receive the object (or the single
metric they update) from ``app.py`` and may register more metrics on ``metrics.registry``.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Seconds from the end of speech to the stored utterance; the product promise is "a few seconds".
UTTERANCE_LATENCY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0)
# Interarrival jitter in seconds (RFC 3550 §6.4.1); VoIP is fine below ~30 ms.
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5)
HTTP_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The standard sipscribe metrics, all in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge(
            "sipscribe_active_calls", "Calls currently being recorded.", registry=r
        )
        self.active_connections = Gauge(
            "sipscribe_active_connections",
            "Dialled calls (endpoint:connect) in progress.",
            registry=r,
        )
        self.active_streams = Gauge(
            "sipscribe_active_streams", "Media streams currently receiving RTP.", registry=r
        )
        self.rtp_packets = Counter("sipscribe_rtp_packets", "RTP packets received.", registry=r)
        self.rtp_packets_lost = Counter(
            "sipscribe_rtp_packets_lost",
            "RTP packets missing from sequence numbers at playout.",
            registry=r,
        )
        self.rtp_jitter = Gauge(
            "sipscribe_rtp_jitter_seconds",
            "Latest interarrival jitter of any stream (RFC 3550).",
            registry=r,
        )
        self.rtp_jitter_histogram = Histogram(
            "sipscribe_rtp_jitter_distribution_seconds",
            "Interarrival jitter samples across streams.",
            buckets=JITTER_BUCKETS,
            registry=r,
        )
        self.asr_queue_depth = Gauge(
            "sipscribe_asr_queue_depth", "Speech segments waiting for recognition.", registry=r
        )
        self.utterance_latency = Histogram(
            "sipscribe_utterance_latency_seconds",
            "Time from the end of an utterance's speech to its transcript being stored.",
            buckets=UTTERANCE_LATENCY_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "sipscribe_webhook_deliveries", "Webhook deliveries accepted by receivers.", registry=r
        )
        self.webhook_failures = Counter(
            "sipscribe_webhook_failures", "Webhook delivery attempts that failed.", registry=r
        )
        self.http_requests = Counter(
            "sipscribe_http_requests",
            "HTTP API requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "sipscribe_http_request_duration_seconds",
            "HTTP API request handling time.",
            ["method", "route"],
            buckets=HTTP_LATENCY_BUCKETS,
            registry=r,
        )
        # Every collection holds the GIL: the event loop (SIP, RTP) stands still meanwhile.
        self.gc_pause = Histogram(
            "sipscribe_gc_pause_seconds",
            "Time each cyclic garbage collection stopped the process, by generation.",
            ["generation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, with its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
