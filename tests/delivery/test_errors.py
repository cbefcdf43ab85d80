from __future__ import annotations

import ssl

import httpx
import pytest

from sipscribe.delivery.errors import (
    DeliveryError,
    EndpointRejected,
    EndpointTimeout,
    EndpointUnreachable,
    ForbiddenAddress,
    TargetConfigError,
    TlsFailure,
    map_exceptions,
)


def raise_in_map(exc: BaseException) -> DeliveryError:
    with pytest.raises(DeliveryError) as info, map_exceptions("POST https://x/"):
        raise exc
    return info.value


def test_mapping() -> None:
    assert isinstance(raise_in_map(httpx.ConnectTimeout("t")), EndpointTimeout)
    assert isinstance(raise_in_map(httpx.RemoteProtocolError("closed")), EndpointUnreachable)
    assert isinstance(raise_in_map(OSError("no route")), EndpointUnreachable)
    tls = httpx.ConnectError("handshake")
    tls.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    error = raise_in_map(tls)
    assert isinstance(error, TlsFailure)
    assert str(error).startswith("POST https://x/: TLS failed")


def test_delivery_errors_pass_through_unchanged() -> None:
    original = EndpointRejected(500, "boom")
    assert raise_in_map(original) is original


def test_retryable_flags() -> None:
    assert EndpointTimeout("x").retryable and EndpointRejected(500, "x").retryable
    assert not ForbiddenAddress("x").retryable
    assert not TargetConfigError("x").retryable
    assert isinstance(TargetConfigError("x"), ValueError)


def test_other_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError), map_exceptions("x"):
        raise KeyError("bug")
