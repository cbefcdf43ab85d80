"""Why a delivery failed: one small tree, foreign errors mapped into it in one place.

Every failure the sending code can meet (httpx's transport errors, TLS, DNS, our own SSRF
refusal, a receiver's error status, an OAuth2 token endpoint that says no) becomes one of these,
as httpx maps httpcore's errors in ``httpx/_transports/default.py`` ``map_httpcore_exceptions``.
``retryable`` tells an at-least-once queue whether another attempt can help.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import httpx


class DeliveryError(Exception):
    """Base for every webhook delivery failure."""

    retryable: bool = True


class TargetConfigError(DeliveryError, ValueError):
    """A webhook target's settings are unusable (bad URL, PEM, header name); 400 at the API."""

    retryable = False


class ForbiddenAddress(DeliveryError):
    """The target resolves to a loopback, link-local or private address the tenant has not
    allowed (server-side request forgery guard)."""

    retryable = False


class EndpointUnreachable(DeliveryError):
    """No connection to the receiver: DNS failure, refused, reset or closed early."""


class EndpointTimeout(DeliveryError):
    """The receiver did not answer within the target's timeout."""


class TlsFailure(DeliveryError):
    """The TLS handshake failed: untrusted certificate, wrong name, or our client certificate
    was refused."""


class EndpointRejected(DeliveryError):
    """The receiver answered an error status; ``status`` says which."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class AuthenticationFailed(DeliveryError):
    """The OAuth2 token endpoint did not give us a token."""


def _is_tls(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """Turn httpx and socket errors raised inside into ``DeliveryError``s naming ``what``
    (e.g. "POST https://hooks.example/x"). ``DeliveryError``s pass through unchanged."""
    try:
        yield
    except DeliveryError:
        raise
    except httpx.TimeoutException as exc:
        raise EndpointTimeout(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        if _is_tls(exc):
            raise TlsFailure(f"{what}: TLS failed: {exc}") from exc
        detail = str(exc) or type(exc).__name__
        raise EndpointUnreachable(f"{what}: {detail}") from exc
    except ssl.SSLError as exc:
        raise TlsFailure(f"{what}: TLS failed: {exc}") from exc
    except OSError as exc:
        raise EndpointUnreachable(f"{what}: {exc}") from exc
