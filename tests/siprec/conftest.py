"""Load the SIPREC INVITE fixtures of tests/data/siprec without a SIP parser.

The split is the simplest correct one for these files: the head is everything before the first
blank line, the body everything after it; header lines are ``Name: value``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).parent.parent / "data" / "siprec"

FIXTURES = (
    "opensips-3.6-rtpengine-invite.txt",
    "cisco-cube-invite.txt",
    "oracle-sbc-invite.txt",
    "avaya-sbce-invite.txt",
    "freeswitch-mixed-invite.txt",
    "bare-sdp-invite.txt",
)


@dataclass(frozen=True)
class Invite:
    request_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def content_type(self) -> str:
        value = self.header("Content-Type")
        assert value is not None
        return value


def load_invite(name: str) -> Invite:
    data = (DATA / name).read_bytes()
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode("utf-8").split("\r\n")
    headers = []
    for line in lines:
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    return Invite(request_line, tuple(headers), body)


@pytest.fixture
def invite() -> Callable[[str], Invite]:
    return load_invite
