"""Fixtures for the SIP core tests: torture-message loader and an in-memory network."""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from sipscribe.sip.endpoint import EndpointConfig, SipEndpoint
from sipscribe.sip.events import SipEvent
from sipscribe.sip.timers import TimerConfig

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "sip"

UAC_ADDR = ("127.0.0.1", 5070)
UAS_ADDR = ("127.0.0.1", 5060)


@pytest.fixture
def load() -> Callable[[str], bytes]:
    """``load("wsinv")`` returns the bytes of ``tests/data/sip/wsinv.sip``."""

    def _load(name: str) -> bytes:
        return (DATA / f"{name}.sip").read_bytes()

    return _load


def make_endpoint(port: int, prefix: str, **config: object) -> SipEndpoint:
    counter = itertools.count(1)
    options: dict[str, object] = {"host": "127.0.0.1", "port": port, "timers": TimerConfig()}
    options.update(config)
    return SipEndpoint(
        EndpointConfig(**options),  # type: ignore[arg-type]
        token_factory=lambda: f"{prefix}{next(counter)}",
    )


@dataclass
class Network:
    """Two endpoints joined by a perfect in-memory UDP link (aioquic ``transfer()``).

    `log` records every datagram as ``(sender, data)``; `drop` decides, per
    datagram, whether the link loses it.
    """

    uac: SipEndpoint
    uas: SipEndpoint
    log: list[tuple[str, bytes]] = field(default_factory=list)
    drop: Callable[[str, bytes], bool] = lambda sender, data: False

    def transfer(self, now: float) -> int:
        """Deliver datagrams both ways until the link is quiet; returns how many moved."""
        moved = 0
        for _ in range(100):
            progress = False
            for name, src, dst, src_addr, dst_addr in (
                ("uac", self.uac, self.uas, UAC_ADDR, UAS_ADDR),
                ("uas", self.uas, self.uac, UAS_ADDR, UAC_ADDR),
            ):
                for data, addr in src.datagrams_to_send():
                    assert addr == dst_addr, f"{name} sent to {addr}, expected {dst_addr}"
                    self.log.append((name, data))
                    moved += 1
                    progress = True
                    if not self.drop(name, data):
                        dst.receive_datagram(data, src_addr, now)
            if not progress:
                return moved
        raise AssertionError("the endpoints never went quiet")

    def sent_by(self, name: str) -> list[bytes]:
        return [data for sender, data in self.log if sender == name]

    def events(self, name: str) -> list[SipEvent]:
        """Drain the events of ``"uac"`` or ``"uas"``."""
        endpoint = self.uac if name == "uac" else self.uas
        events = []
        while (event := endpoint.next_event()) is not None:
            events.append(event)
        return events


@pytest.fixture
def make_network() -> Callable[..., Network]:
    """``make_network(**config)``: both endpoints share the extra EndpointConfig."""

    def _make(**config: object) -> Network:
        return Network(
            uac=make_endpoint(UAC_ADDR[1], "c", **config),
            uas=make_endpoint(UAS_ADDR[1], "s", **config),
        )

    return _make


@pytest.fixture
def network(make_network: Callable[..., Network]) -> Network:
    return make_network()
