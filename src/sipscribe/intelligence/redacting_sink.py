"""Live redaction: pipeline events in, the same events redacted out, in the same order.

``RedactingSink`` sits between the pipeline's bus and everything downstream of it
(storage, webhooks, WebSocket, exports, the LLM), so no subscriber ever sees raw text::

    raw = EventBus()                     # the pipeline publishes here: PipelineContext(bus=raw)
    public = EventBus()                  # store, delivery and live views subscribe here
    sink = RedactingSink(public, policy_for=lambda started: policies[started.tenant_id])
    task = asyncio.create_task(sink.run(raw.subscribe("redaction")))
    ...                                  # at shutdown:
    await raw.close(); await task; await public.close()

``inner`` is anything with ``async publish(event)``, so the sink can also wrap a
publisher directly (``await sink.publish(event)``, then ``await sink.aclose()``).

Theory of operation. The policy of a call is chosen once, from its ``call.started``
(tenant, metadata); events of a call that never announced itself get the default
policy. Each utterance is checked with ``find_sensitive``, the call's two previous
utterances (either party) serving as context, so "what's the security code?" on the
agent's channel makes the customer's "four five six" a CVV.

A card number can be split by a pause: "4111 1111" … "1111 1111" arrive as two
utterances of one channel, and neither half is a card on its own. By the time the second
half arrives the first must not have left yet, so an utterance whose text *ends in
digits* not already inside a card ("$49.99" and "10:30" excepted) is **held**. It is
released when the next utterance of its channel arrives (both are then read as one text,
and a card across the boundary is masked in both), when its stream stops or the call
ends, or after ``hold_s`` seconds (default 8). A chain of digit-only utterances ("4111"
· "1111" · "1111" · "1111") stays held together until 18 more digits have followed an
utterance, after which no card (at most 19 digits) can include its digits. Only
utterances ending in digits pay this latency, typically the time until the same
speaker's next utterance is recognised; events of a call keep their order, so events
queued behind a held utterance (the other party's too) wait with it. If the hold runs
out first, the second half is still masked when it arrives (the first half has gone;
this is logged). The core (``EventRedactor``) is sans-I/O and takes the clock as
``now``; the sink owns the lock and the one timer.

DTMF digits are never added to any text; a ``dtmf`` event keeps its digit only if the
policy allows it and otherwise carries "#".
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sipscribe.intelligence.redaction import (
    DEFAULT_POLICY,
    RedactionError,
    RedactionPolicy,
    SensitiveKind,
    Span,
    TimeSpan,
    digit_edges,
    find_cards_across,
    find_sensitive,
    redact_utterance,
)
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    CallUpdated,
    DtmfReceived,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
)
from sipscribe.pipeline.utterance import Utterance, UtteranceWord

log = logging.getLogger(__name__)

#: Longest wait for the rest of a number, in seconds of wall clock.
DEFAULT_HOLD_S = 8.0
#: Longest pause (stream time) between two parts of one number.
DEFAULT_MAX_GAP_MS = 6000
#: Utterances of the call kept as context for the next one.
CONTEXT_UTTERANCES = 2
#: A card has at most 19 digits: once 18 more have followed an utterance, it is done.
_MAX_CARD_DIGITS = 19


@dataclass(frozen=True, slots=True)
class RedactedUtteranceEvent(UtteranceEvent):
    """An utterance after redaction; an ``UtteranceEvent``, so subscribers need no change.

    ``utterance`` holds the redacted text and words. ``redactions`` says when the masked
    words were spoken (stream ms), for audio redaction. ``raw`` is the original, present
    only when the call's output mode is "redacted_and_unredacted"; ``to_json`` leaves it
    out unless ``include_raw`` so it is never sent by accident. A store keeping both
    writes ``raw_text`` as the text and ``utterance.text`` as the redacted text.
    """

    redactions: tuple[TimeSpan, ...] = ()
    raw: Utterance | None = None

    @property
    def raw_text(self) -> str | None:
        return None if self.raw is None else self.raw.text

    @property
    def raw_words(self) -> tuple[UtteranceWord, ...] | None:
        return None if self.raw is None else self.raw.words

    def to_json(self, *, include_raw: bool = False) -> dict[str, Any]:
        out = UtteranceEvent.to_json(self)
        out["redactions"] = [span.to_dict() for span in self.redactions]
        if include_raw and self.raw is not None:
            out["raw_text"] = self.raw.text
            out["raw_words"] = [w.to_dict() for w in self.raw.words]
        return out


class EventPublisher(Protocol):
    async def publish(self, event: PipelineEvent) -> None: ...


PolicyResolver = Callable[[CallStarted], RedactionPolicy]


@dataclass(eq=False, slots=True)
class _Entry:
    """One event waiting in its call's queue."""

    event: PipelineEvent
    spans: list[Span] = field(default_factory=list)
    #: Set while held: when to let it go anyway.
    deadline: float | None = None
    emitted: bool = False


@dataclass(eq=False, slots=True)
class _Link:
    """An utterance whose last digits a later utterance of its channel may continue."""

    entry: _Entry
    text: str
    end_ms: int
    #: Digits in its run that reaches the next utterance (all of them if the text is one run).
    digits: int


@dataclass(eq=False)
class _Call:
    call_id: str
    policy: RedactionPolicy
    queue: deque[_Entry] = field(default_factory=deque)
    chains: dict[int, list[_Link]] = field(default_factory=dict)
    context: deque[str] = field(default_factory=lambda: deque(maxlen=CONTEXT_UTTERANCES))
    channels: dict[str, int] = field(default_factory=dict)


class EventRedactor:
    """Sans-I/O core of ``RedactingSink``: events and ``now`` in, events out.

    ``receive`` returns what may leave now; held utterances come out of a later
    ``receive``, of ``handle_timer(now)`` once ``next_timer()`` has passed, or of
    ``flush()``. Events of one call come out in the order they went in.
    """

    def __init__(
        self,
        *,
        policy: RedactionPolicy | None = None,
        policy_for: PolicyResolver | None = None,
        hold_s: float = DEFAULT_HOLD_S,
        max_gap_ms: int = DEFAULT_MAX_GAP_MS,
        mask: str = "#",
    ) -> None:
        if hold_s <= 0:
            raise RedactionError(f"redaction hold of {hold_s} s is not positive")
        if max_gap_ms < 0:
            raise RedactionError(f"redaction gap of {max_gap_ms} ms is negative")
        self.policy = policy or DEFAULT_POLICY
        self.policy_for = policy_for
        self.hold_s = hold_s
        self.max_gap_ms = max_gap_ms
        self.mask = mask
        self._calls: dict[str, _Call] = {}

    # -- input --------------------------------------------------------------------------
    def receive(self, event: PipelineEvent, now: float) -> list[PipelineEvent]:
        if isinstance(event, CallStarted):
            policy = self.policy_for(event) if self.policy_for is not None else self.policy
            call = self._calls.get(event.call_id)
            if call is None:
                call = self._calls[event.call_id] = _Call(event.call_id, policy)
            else:
                call.policy = policy
            call.queue.append(_Entry(event))
            return self._drain(call)
        call = self._call(event.call_id)
        if isinstance(event, UtteranceEvent):
            self._utterance(call, event, now)
        elif isinstance(event, StreamStarted):
            call.channels[event.stream_id] = event.channel
            call.queue.append(_Entry(event))
        elif isinstance(event, StreamStopped):
            channel = call.channels.pop(event.stream_id, None)
            if channel is not None:
                self._end_chain(call, channel)
            call.queue.append(_Entry(event))
        elif isinstance(event, CallEnded):
            for entry in call.queue:
                entry.deadline = None
            call.queue.append(_Entry(event))
            out = self._drain(call)
            del self._calls[call.call_id]
            return out
        else:
            if isinstance(event, CallUpdated):
                mode = (event.metadata or {}).get("redaction_output")
                if mode is not None:  # start-streaming chose the call's output mode
                    call.policy = replace(call.policy, output=mode)
            call.queue.append(_Entry(event))
        return self._drain(call)

    def handle_timer(self, now: float) -> list[PipelineEvent]:
        out: list[PipelineEvent] = []
        for call in list(self._calls.values()):
            expired = False
            for entry in call.queue:
                if entry.deadline is not None and entry.deadline <= now:
                    entry.deadline = None
                    expired = True
            if expired:
                out.extend(self._drain(call))
        return out

    def next_timer(self) -> float | None:
        deadlines = [
            e.deadline for c in self._calls.values() for e in c.queue if e.deadline is not None
        ]
        return min(deadlines, default=None)

    def flush(self) -> list[PipelineEvent]:
        """Everything still held, at once (shutdown); forgets every call."""
        out: list[PipelineEvent] = []
        for call in self._calls.values():
            for entry in call.queue:
                entry.deadline = None
            out.extend(self._drain(call))
        self._calls.clear()
        return out

    @property
    def held(self) -> int:
        """Utterances waiting for the rest of a number."""
        return sum(e.deadline is not None for c in self._calls.values() for e in c.queue)

    # -- utterances ---------------------------------------------------------------------
    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id, self.policy)
        return call

    def _utterance(self, call: _Call, event: UtteranceEvent, now: float) -> None:
        u = event.utterance
        policy = call.policy
        if policy.output == "unredacted":
            call.queue.append(_Entry(event))
            return
        spans = find_sensitive(u.text, policy=policy, context="\n".join(call.context))
        call.context.append(u.text)
        entry = _Entry(event, spans)
        call.queue.append(entry)
        call.channels.setdefault(u.stream_id, u.channel)
        if policy.enabled(SensitiveKind.CARD_NUMBER):
            self._link(call, u, entry, now)

    def _link(self, call: _Call, u: Utterance, entry: _Entry, now: float) -> None:
        """Continue, close or start the channel's chain of digit-ending utterances."""
        chain = call.chains.pop(u.channel, [])
        edges = digit_edges(u.text, entry.spans)
        if chain and edges.leading and u.start_ms - chain[-1].end_ms <= self.max_gap_ms:
            found = find_cards_across([link.text for link in chain] + [u.text])
            for link, spans in zip(chain, found, strict=False):
                if not spans:
                    continue
                if not link.entry.emitted:
                    link.entry.spans.extend(spans)
                elif _adds_mask(link.text, link.entry.spans, spans):
                    log.warning(
                        "call %s: channel %d continued a card number after its first part "
                        "was released; only the second part is masked",
                        call.call_id,
                        u.channel,
                    )
            entry.spans.extend(found[-1])
            edges = digit_edges(u.text, entry.spans)
            if edges.whole:
                kept: list[_Link] = []
                after = edges.digits
                for link in reversed(chain):
                    if after >= _MAX_CARD_DIGITS - 1:
                        break
                    kept.append(link)
                    after += link.digits
                for link in chain[: len(chain) - len(kept)]:
                    link.entry.deadline = None
                chain = kept[::-1]
                for link in chain:
                    if link.entry.deadline is None:
                        continue
                    if digit_edges(link.text, link.entry.spans).exposed:
                        link.entry.deadline = now + self.hold_s  # still waiting: wait longer
                    else:
                        link.entry.deadline = None  # its digits are masked already
            else:
                chain = self._release(chain)
        else:
            chain = self._release(chain)
        if edges.trailing:
            chain.append(
                _Link(entry, u.text, u.end_ms, edges.digits if edges.whole else edges.trailing)
            )
            if edges.exposed:
                entry.deadline = now + self.hold_s
        if chain:
            call.chains[u.channel] = chain

    @staticmethod
    def _release(chain: list[_Link]) -> list[_Link]:
        for link in chain:
            link.entry.deadline = None
        return []

    def _end_chain(self, call: _Call, channel: int) -> None:
        self._release(call.chains.pop(channel, []))

    # -- output -------------------------------------------------------------------------
    def _drain(self, call: _Call) -> list[PipelineEvent]:
        out: list[PipelineEvent] = []
        while call.queue and call.queue[0].deadline is None:
            entry = call.queue.popleft()
            entry.emitted = True
            out.append(self._render(call, entry))
        return out

    def _render(self, call: _Call, entry: _Entry) -> PipelineEvent:
        event = entry.event
        policy = call.policy
        if isinstance(event, UtteranceEvent) and policy.output != "unredacted":
            redacted, times = redact_utterance(event.utterance, entry.spans, mask=self.mask)
            raw = event.utterance if policy.output == "redacted_and_unredacted" else None
            return RedactedUtteranceEvent(redacted, at=event.at, redactions=tuple(times), raw=raw)
        if isinstance(event, DtmfReceived) and not policy.dtmf_digits_allowed:
            return replace(event, digit="#")
        return event


def _adds_mask(text: str, have: list[Span], new: list[Span]) -> bool:
    """Whether ``new`` covers a letter or digit that ``have`` left visible."""
    return any(
        text[i].isalnum() and not any(s.start <= i < s.end for s in have)
        for span in new
        for i in range(span.start, span.end)
    )


class RedactingSink:
    """The asyncio edge of ``EventRedactor``: re-publishes redacted events to ``inner``.

    ``publish`` is safe to call from many tasks; a lock keeps the order, and one timer
    releases utterances whose hold has run out. See the module docstring for wiring.
    """

    def __init__(
        self,
        inner: EventPublisher,
        *,
        policy: RedactionPolicy | None = None,
        policy_for: PolicyResolver | None = None,
        hold_s: float = DEFAULT_HOLD_S,
        max_gap_ms: int = DEFAULT_MAX_GAP_MS,
        mask: str = "#",
    ) -> None:
        self._inner = inner
        self._core = EventRedactor(
            policy=policy,
            policy_for=policy_for,
            hold_s=hold_s,
            max_gap_ms=max_gap_ms,
            mask=mask,
        )
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def held(self) -> int:
        """Utterances waiting for the rest of a number (a gauge for metrics)."""
        return self._core.held

    async def publish(self, event: PipelineEvent) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            await self._send(self._core.receive(event, loop.time()))
            self._rearm()

    async def run(self, events: AsyncIterable[PipelineEvent]) -> None:
        """Redact every event of ``events`` (e.g. a bus ``Subscription``) until it ends."""
        try:
            async for event in events:
                await self.publish(event)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release everything still held and stop the timer."""
        async with self._lock:
            self._cancel_timer()
            await self._send(self._core.flush())
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(self, events: list[PipelineEvent]) -> None:
        for event in events:
            await self._inner.publish(event)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_for = None

    def _rearm(self) -> None:
        when = self._core.next_timer()
        if when == self._armed_for and (when is None or self._timer is not None):
            return
        self._cancel_timer()
        if when is not None:
            self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)
            self._armed_for = when

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_for = None
        task = asyncio.get_running_loop().create_task(self._fire())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self) -> None:
        try:
            async with self._lock:
                loop = asyncio.get_running_loop()
                await self._send(self._core.handle_timer(loop.time()))
                self._rearm()
        except Exception:  # a broken subscriber must not kill the timer for good
            log.exception("redaction: releasing held utterances failed")


__all__ = [
    "CONTEXT_UTTERANCES",
    "DEFAULT_HOLD_S",
    "DEFAULT_MAX_GAP_MS",
    "EventPublisher",
    "EventRedactor",
    "PolicyResolver",
    "RedactedUtteranceEvent",
    "RedactingSink",
]
