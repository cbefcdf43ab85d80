"""Utterances and DTMF events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from sipscribe.store.calls import create_call
from sipscribe.store.tenants import create_tenant
from sipscribe.store.utterances import (
    UtteranceError,
    add_dtmf_event,
    add_utterance,
    count_utterances,
    delete_utterances,
    list_dtmf_events,
    list_utterances,
)


@pytest.fixture
async def call(session):
    tenant = await create_tenant(session, name="acme")
    return await create_call(session, tenant_id=tenant.id, source="siprec")


async def test_sequence_counts_up_and_order_is_by_time(session, call) -> None:
    recognised = datetime(2026, 4, 1, 9, 0, 5, tzinfo=UTC)
    first = await add_utterance(
        session,
        call_id=call.id,
        channel=1,
        start_ms=2000,
        end_ms=3500,
        text="My card number is 4111 1111 1111 1111.",
        redacted_text="My card number is ###################.",
        role="customer",
        stream_id="s1",
        words=[{"word": "My", "start_ms": 2000, "end_ms": 2100, "probability": 0.9}],
        confidence=0.87,
        recognised_at=recognised,
    )
    second = await add_utterance(
        session, call_id=call.id, channel=0, start_ms=0, end_ms=1500, text="Hello.", role="agent"
    )
    assert (first.sequence, second.sequence) == (0, 1)
    session.expunge_all()
    rows = await list_utterances(session, call_id=call.id, tenant_id=call.tenant_id)
    assert [(u.sequence, u.text) for u in rows] == [
        (1, "Hello."),
        (0, "My card number is 4111 1111 1111 1111."),
    ]
    stored = rows[1]
    assert stored.redacted_text == "My card number is ###################."
    assert stored.words == [{"word": "My", "start_ms": 2000, "end_ms": 2100, "probability": 0.9}]
    assert (stored.confidence, stored.recognised_at, stored.stream_id) == (0.87, recognised, "s1")
    assert rows[0].words is None
    assert await count_utterances(session, call_id=call.id, tenant_id=call.tenant_id) == 2


async def test_other_tenant_sees_nothing(session, call) -> None:
    other = await create_tenant(session, name="globex")
    await add_utterance(session, call_id=call.id, channel=0, start_ms=0, end_ms=1, text="x")
    assert await list_utterances(session, call_id=call.id, tenant_id=other.id) == []
    assert await count_utterances(session, call_id=call.id, tenant_id=other.id) == 0
    assert await delete_utterances(session, call_id=call.id, tenant_id=other.id) == 0
    assert await count_utterances(session, call_id=call.id, tenant_id=call.tenant_id) == 1
    assert await delete_utterances(session, call_id=call.id, tenant_id=call.tenant_id) == 1
    assert await count_utterances(session, call_id=call.id, tenant_id=call.tenant_id) == 0


async def test_explicit_sequence_must_be_unique(session, call) -> None:
    call_id = call.id  # the failed insert rolls the session back, expiring loaded records
    await add_utterance(
        session, call_id=call_id, channel=0, start_ms=0, end_ms=1, text="a", sequence=7
    )
    with pytest.raises(IntegrityError):
        await add_utterance(
            session, call_id=call_id, channel=1, start_ms=0, end_ms=1, text="b", sequence=7
        )
    nxt = await add_utterance(session, call_id=call_id, channel=1, start_ms=0, end_ms=1, text="c")
    assert nxt.sequence == 8


async def test_concurrent_writers_get_distinct_sequences(database, call) -> None:
    async def write(channel: int, index: int) -> int:
        async with database.session() as own:
            utterance = await add_utterance(
                own, call_id=call.id, channel=channel, start_ms=index, end_ms=index, text="t"
            )
            return utterance.sequence

    numbers = await asyncio.gather(*(write(i % 2, i) for i in range(12)))
    assert sorted(numbers) == list(range(12))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_ms": 10, "end_ms": 5}, "utterance span 10..5 ms is not valid"),
        ({"start_ms": -1, "end_ms": 5}, "utterance span -1..5 ms is not valid"),
        ({"channel": -1}, "utterance channel -1 is negative"),
        ({"sequence": -2}, "utterance sequence -2 is negative"),
        ({"role": "bot"}, "utterance role 'bot' is not 'agent' or 'customer'"),
    ],
)
async def test_add_utterance_rejects(session, call, kwargs, message: str) -> None:
    values = {"channel": 0, "start_ms": 0, "end_ms": 1, "text": "x", **kwargs}
    with pytest.raises(UtteranceError) as info:
        await add_utterance(session, call_id=call.id, **values)
    assert str(info.value) == message


async def test_dtmf_events(session, call) -> None:
    await add_dtmf_event(session, call_id=call.id, digit="5", start_ms=900, duration_ms=120)
    await add_dtmf_event(session, call_id=call.id, digit="a", start_ms=100, channel=1)
    events = await list_dtmf_events(session, call_id=call.id, tenant_id=call.tenant_id)
    assert [(e.digit, e.start_ms, e.duration_ms, e.channel) for e in events] == [
        ("A", 100, None, 1),
        ("5", 900, 120, None),
    ]
    other = await create_tenant(session, name="globex")
    assert await list_dtmf_events(session, call_id=call.id, tenant_id=other.id) == []


@pytest.mark.parametrize(
    ("digit", "start_ms", "message"),
    [
        ("E", 0, "DTMF digit 'E' is not one of 0-9, *, #, A-D"),
        ("12", 0, "DTMF digit '12' is not one of 0-9, *, #, A-D"),
        ("1", -5, "DTMF start -5 ms is negative"),
    ],
)
async def test_dtmf_rejects(session, call, digit: str, start_ms: int, message: str) -> None:
    with pytest.raises(UtteranceError) as info:
        await add_dtmf_event(session, call_id=call.id, digit=digit, start_ms=start_ms)
    assert str(info.value) == message
