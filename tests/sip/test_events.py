"""Events and peers are small immutable values."""

from __future__ import annotations

import dataclasses

import pytest

from sipscribe.sip.events import KeepAlive, ParseFailed, Peer, SipEvent


def test_peer_reliability() -> None:
    assert not Peer("UDP", ("192.0.2.1", 5060)).reliable
    assert Peer("TCP", ("192.0.2.1", 5060), 4).reliable
    assert Peer("TLS", ("192.0.2.1", 5061)).reliable


def test_events_are_frozen_and_hashable() -> None:
    event = ParseFailed("bad", Peer("UDP", ("192.0.2.1", 5060)))
    assert isinstance(event, SipEvent)
    assert (event.status, event.responded, event.close_connection) == (400, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.status = 500  # type: ignore[misc]
    assert len({KeepAlive(Peer("UDP", ("a", 1))), KeepAlive(Peer("UDP", ("a", 1)))}) == 1
