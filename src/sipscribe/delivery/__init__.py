"""delivery layer: webhooks, completion bundles (JSON and vCon), the live feed and exports.

``service.DeliveryService`` consumes redacted pipeline events and does the sending;
``live.LiveFeed`` fans events out to WebSocket clients. Pure pieces: ``signing`` (HMAC
signatures), ``retry`` (backoff), ``ssrf`` (address checks), ``targets`` (target options),
``payloads`` and ``bundle``/``vcon`` (what is sent), ``export`` (export formats),
``formats`` (transcript renderings). Nothing is imported here, so importing one small module
(e.g. ``formats`` for the CLI) stays cheap.
"""
