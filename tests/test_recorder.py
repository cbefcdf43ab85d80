"""Admission control of the recording server (no sockets)."""

from __future__ import annotations

import pytest

from sipscribe.config import load_settings
from sipscribe.recorder import Admission, _Buckets, local_address_towards


def test_allow_list_from_settings() -> None:
    adm = Admission.from_settings(load_settings(sip_allow_cidrs="10.0.0.0/8, 127.0.0.1/32"))
    assert adm.allowed("127.0.0.1") and adm.allowed("10.1.2.3")
    assert not adm.allowed("192.168.1.1")
    assert not adm.allowed("not-an-ip")


def test_empty_allow_list_admits_everyone() -> None:
    assert Admission().allowed("203.0.113.9")


def test_bad_cidr_is_a_config_error() -> None:
    with pytest.raises(ValueError):
        Admission.from_settings(load_settings(sip_allow_cidrs="10.0.0.0/33"))


def test_per_source_token_bucket() -> None:
    buckets = _Buckets(rate=2.0)  # burst 4
    assert all(buckets.take("a", 0.0) for _ in range(4))
    assert not buckets.take("a", 0.0), "burst spent"
    assert buckets.take("b", 0.0), "other sources are independent"
    assert buckets.take("a", 0.5), "refilled at 2/s"
    assert not buckets.take("a", 0.5)


def test_local_address_towards_loopback() -> None:
    assert local_address_towards("127.0.0.1") == "127.0.0.1"
