from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.ports import PortAllocator, PortsExhausted


def test_even_ports_rtcp_room_and_exhaustion() -> None:
    alloc = PortAllocator(10001, 10010)
    ports = [alloc.allocate() for _ in range(4)]
    assert ports == [10002, 10004, 10006, 10008]
    assert all(p % 2 == 0 and p + 1 <= 10010 for p in ports)
    with pytest.raises(PortsExhausted, match="all 4 RTP port pairs"):
        alloc.allocate()


def test_released_ports_are_reused_last() -> None:
    alloc = PortAllocator(20000, 20008)
    a = alloc.allocate()
    alloc.release(a)
    assert [alloc.allocate() for _ in range(4)] == [20002, 20004, 20006, 20000]


def test_release_of_unknown_port_is_an_error() -> None:
    alloc = PortAllocator(20000, 20010)
    with pytest.raises(ValueError, match="was not allocated"):
        alloc.release(20002)


def test_range_without_pair() -> None:
    with pytest.raises(ValueError, match="no even/odd pair"):
        PortAllocator(20001, 20002)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=300))
def test_never_hands_out_a_port_twice(ops: list[bool]) -> None:
    alloc = PortAllocator(30000, 30040)
    held: list[int] = []
    for take in ops:
        if take:
            try:
                p = alloc.allocate()
            except PortsExhausted:
                assert len(held) == alloc.capacity
                continue
            assert p not in held
            held.append(p)
        elif held:
            alloc.release(held.pop(0))
    assert alloc.in_use == len(held)


async def test_rtp_sockets_get_a_large_receive_buffer() -> None:
    import socket

    from sipscribe.media.stream import MediaEndpoint

    alloc = PortAllocator(46000, 46010)
    ep = await MediaEndpoint.open("127.0.0.1", alloc)
    try:
        sock = ep._transports[0].get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
    finally:
        ep.close()
    assert alloc.in_use == 0
