from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.jitterbuffer import Gap, JitterBuffer, Released
from sipscribe.media.rtp import RtpPacket
from sipscribe.media.seqnum import uint16_diff

FRAME = 160  # 20 ms at 8 kHz


def stream(n: int, *, seq: int = 1000, ts: int = 50_000, ssrc: int = 0xABC, step: int = FRAME):
    return [
        RtpPacket(
            payload_type=0,
            sequence_number=(seq + i) & 0xFFFF,
            timestamp=(ts + i * step) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=bytes([i & 0xFF]) * 160,
        )
        for i in range(n)
    ]


def run(jb: JitterBuffer, arrivals: list[tuple[RtpPacket, float]]) -> list[Released]:
    out: list[Released] = []
    now = 0.0
    for packet, now in arrivals:
        out += jb.push(packet, now)
    out += jb.poll(now + 10_000)
    out += jb.flush()
    return out


def seqs(items: list[Released]) -> list[int | Gap]:
    return [i.sequence_number if isinstance(i, RtpPacket) else i for i in items]


def in_order(packets: list[RtpPacket], start_ms: float = 0, spacing: float = 20):
    return [(p, start_ms + i * spacing) for i, p in enumerate(packets)]


def test_in_order_stream_passes_through_after_the_start_wait() -> None:
    jb = JitterBuffer(8000, depth_ms=60)
    packets = stream(10)
    out = []
    for i, (p, t) in enumerate(in_order(packets)):
        released = jb.push(p, t)
        if i < 3:
            assert released == []  # the start waits depth_ms for reordered first packets
        out += released
    assert seqs(out) == list(range(1000, 1010))  # released by the 4th push (60 ms), then at once
    assert jb.stats.lost == 0 and len(jb) == 0


def test_reordered_start_begins_at_the_lowest_packet() -> None:
    jb = JitterBuffer(8000, depth_ms=60)
    p = stream(4)
    out = run(jb, [(p[1], 0), (p[0], 5), (p[3], 10), (p[2], 15)])
    assert seqs(out) == [1000, 1001, 1002, 1003]
    assert jb.stats.reordered == 2


def test_hole_is_given_up_after_depth_and_reported_as_a_gap() -> None:
    jb = JitterBuffer(8000, depth_ms=60)
    p = stream(6)
    out = []
    out += jb.push(p[0], 0) + jb.poll(60)
    out += jb.push(p[1], 20)
    out += jb.push(p[3], 60)  # 2 is missing
    assert jb.next_timer() == 120
    out += jb.poll(119.9)
    assert seqs(out) == [1000, 1001]
    out += jb.poll(120)
    assert seqs(out) == [1000, 1001, Gap(1, FRAME, "loss"), 1003]
    out += jb.push(p[2], 130)  # too late now
    assert jb.stats.late == 1 and jb.stats.lost == 1
    out += jb.push(p[4], 140) + jb.push(p[5], 160)
    assert seqs(out)[-2:] == [1004, 1005]


def test_hole_filled_in_time_releases_immediately() -> None:
    jb = JitterBuffer(8000)
    p = stream(5)
    out = jb.push(p[0], 0) + jb.poll(60) + jb.push(p[2], 60) + jb.push(p[3], 70)
    assert seqs(out) == [1000]
    assert seqs(jb.push(p[1], 80)) == [1001, 1002, 1003]
    assert jb.stats.reordered == 1 and jb.stats.lost == 0


def test_duplicates_are_counted_and_dropped() -> None:
    jb = JitterBuffer(8000)
    p = stream(3)
    out = run(jb, [(p[0], 0), (p[0], 1), (p[2], 2), (p[2], 3), (p[1], 4), (p[1], 200)])
    assert seqs(out) == [1000, 1001, 1002]
    assert jb.stats.duplicated == 3
    assert jb.stats.packets == 6


def test_sequence_wrap_65535_to_0() -> None:
    jb = JitterBuffer(8000)
    p = stream(8, seq=65532)
    arrivals = in_order([p[0], p[1], p[2], p[4], p[3], p[6], p[7]])  # 5 (= seq 1) lost
    out = run(jb, arrivals)
    assert seqs(out) == [65532, 65533, 65534, 65535, 0, Gap(1, FRAME, "loss"), 2, 3]
    assert jb.stats.reordered == 1
    assert jb.stats.resyncs == 0


def test_timestamp_wrap_gives_exact_gap() -> None:
    jb = JitterBuffer(8000)
    p = stream(6, ts=0xFFFFFFFF - 300)
    out = run(jb, in_order([p[0], p[1], p[4], p[5]]))
    assert seqs(out) == [1000, 1001, Gap(2, 2 * FRAME, "loss"), 1004, 1005]


def test_ssrc_change_flushes_old_and_resyncs_without_a_huge_gap() -> None:
    jb = JitterBuffer(8000)
    a = stream(5, seq=100, ssrc=1)
    b = stream(5, seq=40_000, ts=7, ssrc=2)
    out = run(jb, in_order(a + b))
    assert seqs(out) == [100, 101, 102, 103, 104, Gap(0, 0, "resync"), *list(range(40000, 40005))]
    assert jb.ssrc is None  # flushed
    assert jb.stats.resyncs == 1 and jb.stats.lost == 0 and jb.stats.ssrc == 2


def test_ssrc_change_with_old_packets_still_held() -> None:
    jb = JitterBuffer(8000)
    a = stream(4, seq=100, ssrc=1)
    b = stream(3, seq=9, ssrc=2)
    out = []
    out += jb.push(a[0], 0) + jb.poll(60) + jb.push(a[2], 60)  # 101 missing, 102 held
    out += jb.push(b[0], 70) + jb.push(b[1], 90)  # confirmed: old flushed first
    assert seqs(out) == [100, Gap(1, FRAME, "loss"), 102, Gap(0, 0, "resync"), 9, 10]
    out += jb.push(a[3], 95)  # a straggler from the old source: on probation, then dropped
    out += jb.push(b[2], 110)
    assert seqs(out)[-1] == 11
    assert jb.ssrc == 2


def test_straggler_of_the_old_source_does_not_switch_back() -> None:
    jb = JitterBuffer(8000)
    a = stream(6, seq=100, ssrc=1)
    b = stream(6, seq=9, ssrc=2)
    # a[3] and a[4] were delayed in the network and arrive together after the switch
    arrivals = in_order([*a[:3], *a[5:], b[0], b[1], a[3], a[4], *b[2:]])
    out = run(jb, arrivals)
    loss, resync = Gap(2, 2 * FRAME, "loss"), Gap(0, 0, "resync")
    assert seqs(out) == [100, 101, 102, loss, 105, resync, *range(9, 15)]
    assert jb.stats.late == 2 and jb.stats.resyncs == 1


def test_interleaved_foreign_ssrc_does_not_flap() -> None:
    jb = JitterBuffer(8000)
    a = stream(20, ssrc=1)
    stray = stream(20, seq=5, ssrc=99)
    arrivals = []
    for i in range(20):
        arrivals.append((a[i], i * 20.0))
        if i % 5 == 0:
            arrivals.append((stray[i], i * 20.0 + 1))  # isolated strays, far apart in seq
    out = run(jb, arrivals)
    assert seqs(out) == list(range(1000, 1020))
    assert jb.stats.resyncs == 0


def test_huge_sequence_jump_is_a_resync_not_a_gap() -> None:
    jb = JitterBuffer(8000)
    a = stream(5, seq=10)
    b = stream(5, seq=30_010, ts=123_456_789)  # sender restarted its sequence, same SSRC
    out = run(jb, in_order(a + b))
    assert seqs(out) == [10, 11, 12, 13, 14, Gap(0, 0, "resync"), *list(range(30010, 30015))]
    assert jb.stats.lost == 0 and jb.stats.resyncs == 1


def test_lone_wild_packet_is_dropped_without_resync() -> None:
    jb = JitterBuffer(8000)
    a = stream(10, seq=10)
    wild = stream(1, seq=50_000)[0]
    arrivals = in_order(a)
    arrivals.insert(5, (wild, 90))
    out = run(jb, arrivals)
    assert seqs(out) == list(range(10, 20))
    assert jb.stats.resyncs == 0


def test_large_but_plausible_loss_is_a_gap() -> None:
    jb = JitterBuffer(8000)
    p = stream(600)
    out = run(jb, in_order([p[0], p[1], p[599]]))  # a 12-second outage
    assert seqs(out) == [1000, 1001, Gap(597, 597 * FRAME, "loss"), 1599]


def test_dtx_timestamp_jump_with_contiguous_sequence() -> None:
    jb = JitterBuffer(8000)
    p = stream(6)
    p[3].timestamp += 8000  # one second of silence suppression before the 4th packet
    p[3].marker = True
    p[4].timestamp += 8000
    p[5].timestamp += 8000
    out = run(jb, in_order(p))
    assert seqs(out) == [1000, 1001, 1002, Gap(0, 8000, "dtx"), 1003, 1004, 1005]
    assert jb.stats.lost == 0


def test_timestamp_going_backwards_is_a_resync_marker() -> None:
    jb = JitterBuffer(8000)
    p = stream(4)
    p[2].timestamp = 5
    p[3].timestamp = 5 + FRAME
    out = run(jb, in_order(p))
    assert seqs(out) == [1000, 1001, Gap(0, 0, "resync"), 1002, 1003]


def test_frame_size_is_learned_from_the_stream() -> None:
    jb = JitterBuffer(8000, ptime_ms=20)
    p = stream(8, step=240)  # 30 ms packets although the SDP said nothing
    out = run(jb, in_order([*p[:4], *p[5:]], spacing=30))
    assert seqs(out) == [1000, 1001, 1002, 1003, Gap(1, 240, "loss"), 1005, 1006, 1007]
    assert jb.frame_samples == 240


def test_opus_clock_and_gap_scaling() -> None:
    jb = JitterBuffer(48000)
    p = stream(5, step=960)
    out = run(jb, in_order([p[0], p[1], p[3], p[4]]))
    gap = out[2]
    assert gap == Gap(1, 960, "loss")
    assert isinstance(gap, Gap)
    assert gap.output_samples(clock_rate=48000, sample_rate=16000) == 320
    assert Gap(1, 160, "loss").output_samples(clock_rate=8000, sample_rate=16000) == 320  # G.722


def test_memory_is_bounded_without_any_time_passing() -> None:
    jb = JitterBuffer(8000, depth_ms=60, max_packets=16)
    p = stream(500)
    out = jb.push(p[0], 0) + jb.poll(60)
    for packet in p[2:]:  # 1 never comes, and the clock never moves
        out += jb.push(packet, 60)
        assert len(jb) <= 16
    out += jb.flush()
    assert seqs(out) == [1000, Gap(1, FRAME, "loss"), *range(1002, 1500)]


def test_next_timer_and_flush() -> None:
    jb = JitterBuffer(8000, depth_ms=40)
    assert jb.next_timer() is None
    p = stream(3)
    jb.push(p[0], 100)
    assert jb.next_timer() == 140
    assert seqs(jb.poll(140)) == [1000]
    assert jb.next_timer() is None
    jb.push(p[2], 150)
    assert seqs(jb.flush()) == [Gap(1, FRAME, "loss"), 1002]
    assert jb.ssrc is None and len(jb) == 0
    # after a flush the next packet starts a new stream, with no gap from the old one
    assert seqs(jb.push(stream(1, seq=5)[0], 200) + jb.poll(240)) == [5]


def test_unconfirmed_probation_packet_is_released_by_flush() -> None:
    jb = JitterBuffer(8000)
    a = stream(2, ssrc=1)
    b = stream(1, seq=7, ssrc=2)
    out = run(jb, [(a[0], 0), (a[1], 20), (b[0], 40)])
    assert seqs(out) == [1000, 1001, Gap(0, 0, "resync"), 7]


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="clock rate 0 is not positive"):
        JitterBuffer(0)
    with pytest.raises(ValueError, match="must be positive"):
        JitterBuffer(8000, max_packets=0)


# -- properties --------------------------------------------------------------------------


def _unwrap(items: list[Released]) -> list[int]:
    out: list[int] = []
    for item in items:
        if isinstance(item, RtpPacket):
            if not out:
                out.append(item.sequence_number)
            else:
                out.append(out[-1] + uint16_diff(item.sequence_number, out[-1] & 0xFFFF))
    return out


@st.composite
def jittered_stream(draw: st.DrawFn, *, bounded: bool):
    n = draw(st.integers(2, 80))
    start_seq = draw(st.integers(0, 0xFFFF))
    start_ts = draw(st.integers(0, 0xFFFFFFFF))
    depth = draw(st.sampled_from([40, 60, 100]))
    packets = stream(n, seq=start_seq, ts=start_ts)
    lost = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    arrivals = []
    for i, packet in enumerate(packets):
        if i in lost:
            continue
        # Within the depth: no packet is delayed by depth - 20 ms or more past its nominal time.
        delay = draw(st.floats(0, depth - 21 if bounded else 1000))
        arrivals.append((packet, i * 20.0 + delay, i))
        if draw(st.integers(0, 9)) == 0:  # ~10% duplicated, the copy later
            arrivals.append((packet, i * 20.0 + delay + draw(st.floats(0, 200)), i))
    arrivals.sort(key=lambda a: a[1])
    return depth, packets, lost, arrivals


@settings(max_examples=300, deadline=None)
@given(jittered_stream(bounded=True))
def test_any_reorder_duplication_and_loss_within_depth(case) -> None:
    depth, packets, _lost, arrivals = case
    jb = JitterBuffer(8000, depth_ms=depth)
    out = run(jb, [(p, t) for p, t, _ in arrivals])
    released = [i for i in out if isinstance(i, RtpPacket)]
    gaps = [i for i in out if isinstance(i, Gap)]
    received = sorted({i for _, _, i in arrivals})

    order = _unwrap(out)
    assert order == sorted(set(order))  # strictly in order, no duplicates
    # Every packet that arrived is released: none was late, since all came within the depth.
    assert [p.payload for p in released] == [packets[i].payload for i in received]
    assert jb.stats.late == 0
    # Gap accounting adds up: released + lost == span, and gaps sit exactly at the holes.
    span = received[-1] - received[0] + 1
    assert len(released) + sum(g.packets for g in gaps) == span
    assert jb.stats.lost == sum(g.packets for g in gaps) == span - len(received)
    assert all(g.reason == "loss" and g.samples == g.packets * FRAME for g in gaps)
    assert jb.stats.duplicated == len(arrivals) - len(received)


@settings(max_examples=300, deadline=None)
@given(jittered_stream(bounded=False))
def test_any_arrival_order_keeps_invariants(case) -> None:
    depth, _packets, _lost, arrivals = case
    jb = JitterBuffer(8000, depth_ms=depth, max_packets=8)
    out = []
    for packet, now, _ in arrivals:
        out += jb.push(packet, now)
        assert len(jb) <= 8 + 2  # held (bounded) + probation (at most 2)
    out += jb.flush()
    order = _unwrap(out)
    assert order == sorted(set(order))
    released = [i for i in out if isinstance(i, RtpPacket)]
    gaps = [i for i in out if isinstance(i, Gap)]
    if released:
        assert len(released) + sum(g.packets for g in gaps) == order[-1] - order[0] + 1
    # Every arrival is accounted for exactly once.
    stats = jb.stats
    assert len(released) + stats.late + stats.duplicated == len(arrivals)
    assert stats.resyncs == 0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 30),
    st.integers(2, 30),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_ssrc_change_property(n_a: int, n_b: int, seq_a: int, seq_b: int, ts_b: int) -> None:
    jb = JitterBuffer(8000)
    a = stream(n_a, seq=seq_a, ssrc=1)
    b = stream(n_b, seq=seq_b, ts=ts_b, ssrc=2)
    out = run(jb, in_order(a + b))
    assert out.count(Gap(0, 0, "resync")) == 1
    cut = out.index(Gap(0, 0, "resync"))
    assert [p.ssrc for p in out[:cut]] == [1] * n_a  # type: ignore[union-attr]
    assert [p.ssrc for p in out[cut + 1 :]] == [2] * n_b  # type: ignore[union-attr]
    assert jb.stats.lost == 0


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_timeline_is_conserved_through_loss_and_silence_suppression(data: st.DataObject) -> None:
    """In-order arrival with losses and DTX jumps (marker set on the first packet after each
    silence, RFC 3551 §4.1): released packets plus gap samples cover the timestamps exactly."""
    n = data.draw(st.integers(3, 60))
    packets = stream(
        n, seq=data.draw(st.integers(0, 0xFFFF)), ts=data.draw(st.integers(0, 2**32 - 1))
    )
    shift = 0
    for i, packet in enumerate(packets):
        if i > 1 and data.draw(st.integers(0, 7)) == 0:
            shift += data.draw(st.integers(1, 200)) * FRAME // 4  # silence of any length
            packet.marker = True
        packet.timestamp = (packet.timestamp + shift) & 0xFFFFFFFF
    lost = data.draw(st.sets(st.integers(1, n - 2), max_size=n // 3))  # first and last arrive
    jb = JitterBuffer(8000)
    out = run(jb, in_order([p for i, p in enumerate(packets) if i not in lost]))
    released = [i for i in out if isinstance(i, RtpPacket)]
    gaps = [i for i in out if isinstance(i, Gap)]
    span = (packets[-1].timestamp - packets[0].timestamp) & 0xFFFFFFFF
    assert len(released) * FRAME + sum(g.samples for g in gaps) == span + FRAME
    assert sum(g.packets for g in gaps) == len(lost)
    assert {g.reason for g in gaps} <= {"loss", "dtx"}
