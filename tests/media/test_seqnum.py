from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sipscribe.media.seqnum import (
    ExtendedSequence,
    uint16_add,
    uint16_diff,
    uint16_gt,
    uint32_add,
    uint32_diff,
    uint32_gt,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def test_uint16_wraps() -> None:
    assert uint16_add(65535, 1) == 0
    assert uint16_add(0, -1) == 65535
    assert uint16_diff(1, 65535) == 2
    assert uint16_diff(65535, 1) == -2
    assert uint16_diff(0x8000, 0) == -0x8000  # exactly half the space is "behind"
    assert uint16_gt(0, 65535)
    assert not uint16_gt(65535, 0)
    assert not uint16_gt(7, 7)


def test_uint32_wraps() -> None:
    assert uint32_add(0xFFFFFFFF, 160) == 159
    assert uint32_diff(159, 0xFFFFFFFF) == 160
    assert uint32_diff(0xFFFFFFFF, 159) == -160
    assert uint32_gt(10, 0xFFFFFFF0)


@given(u16, st.integers(-0x8000, 0x7FFF))
def test_uint16_diff_inverts_add(a: int, delta: int) -> None:
    assert uint16_diff(uint16_add(a, delta), a) == delta


@given(u32, st.integers(-0x80000000, 0x7FFFFFFF))
def test_uint32_diff_inverts_add(a: int, delta: int) -> None:
    assert uint32_diff(uint32_add(a, delta), a) == delta


def test_extended_sequence_counts_cycles_and_places_reordered_packets() -> None:
    ext = ExtendedSequence()
    assert ext.highest is None and ext.cycles == 0
    assert ext.update(65534) == 65534
    assert ext.update(0) == 65536  # wrapped
    assert ext.cycles == 1
    assert ext.update(65535) == 65535  # reordered across the wrap: just below, not a cycle on
    assert ext.highest == 65536
    assert ext.update(1) == 65537
    assert ext.extend(65533) == 65533  # extend() does not record
    assert ext.highest == 65537


def test_extended_sequence_before_first_packet_is_negative() -> None:
    ext = ExtendedSequence()
    ext.update(2)
    assert ext.update(65535) == -1  # sent before the first one we saw, across a wrap
    assert ext.highest == 2


def test_extended_sequence_reset() -> None:
    ext = ExtendedSequence()
    ext.update(100)
    ext.reset(5)
    assert ext.highest == 5
    ext.reset()
    assert ext.highest is None


@given(u16, st.lists(st.integers(1, 1000), min_size=1, max_size=300))
def test_extended_sequence_is_monotonic_over_many_wraps(start: int, steps: list[int]) -> None:
    ext = ExtendedSequence()
    expected = start
    assert ext.update(start) == start
    for step in steps:
        expected += step
        assert ext.update(expected & 0xFFFF) == expected
    assert ext.cycles == expected >> 16
