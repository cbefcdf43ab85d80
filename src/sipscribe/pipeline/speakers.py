"""Who spoke when, from speaker events, to name the speakers of a mixed audio stream.

A dialled call gives us one stream with everyone on the far end mixed together; a
conferencing client that knows who is talking posts ``started_speaking`` /
``stopped_speaking`` events. :class:`SpeakerTimeline` keeps them as intervals on the
stream's clock (ms from its start) and names an utterance by the speaker whose intervals
overlap it most. Speech and events never line up exactly (clients report late, our
endpointer pads), so an utterance with no overlap goes to whoever spoke last before it,
within ``carry_ms``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Speaker", "SpeakerTimeline"]


@dataclass(frozen=True)
class Speaker:
    id: str
    name: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass
class SpeakerTimeline:
    """Speaking intervals per speaker on one stream's clock."""

    carry_ms: int = 3000
    #: Bound on stored intervals (a day of turn-taking); the oldest are dropped.
    max_intervals: int = 50_000
    _speakers: dict[str, Speaker] = field(default_factory=dict)
    _open: dict[str, int] = field(default_factory=dict)  # speaker id -> start ms
    _intervals: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, id)

    def started(self, speaker: Speaker, at_ms: int) -> None:
        self._speakers[speaker.id] = speaker
        if speaker.id not in self._open:
            self._open[speaker.id] = max(0, at_ms)

    def stopped(self, speaker: Speaker, at_ms: int) -> None:
        self._speakers.setdefault(speaker.id, speaker)
        start = self._open.pop(speaker.id, None)
        if start is None:
            return  # a stop without a start: nothing to attribute
        end = max(start, at_ms)
        bisect.insort(self._intervals, (start, end, speaker.id))
        if len(self._intervals) > self.max_intervals:
            del self._intervals[: len(self._intervals) - self.max_intervals]

    def speaker_for(self, start_ms: int, end_ms: int) -> Speaker | None:
        """The speaker who talked most during [start_ms, end_ms], else the last before it."""
        overlap: dict[str, int] = {}
        last: tuple[int, str] | None = None
        for s, e, sid in self._candidates(start_ms, end_ms):
            shared = min(e, end_ms) - max(s, start_ms)
            if shared > 0:
                overlap[sid] = overlap.get(sid, 0) + shared
            elif e <= start_ms and (last is None or e > last[0]):
                last = (e, sid)
        if overlap:
            best = max(overlap.items(), key=lambda item: item[1])[0]
            return self._speakers[best]
        if last is not None and start_ms - last[0] <= self.carry_ms:
            return self._speakers[last[1]]
        return None

    def _candidates(self, start_ms: int, end_ms: int) -> list[tuple[int, int, str]]:
        # Closed intervals starting before the utterance ends, plus the open ones.
        hi = bisect.bisect_right(self._intervals, (end_ms, 2**62, "\uffff"))
        found = [iv for iv in self._intervals[:hi] if iv[1] >= start_ms - self.carry_ms]
        found += [(s, 2**62, sid) for sid, s in self._open.items() if s <= end_ms]
        return found
