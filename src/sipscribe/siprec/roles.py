"""Who is the agent and who is the customer, stream by stream, with the evidence.

Two steps. First each recorded SDP audio stream is tied to the participant that sends it:
m-line ``a=label`` → metadata ``<stream>`` with that label → the participant whose
``participantstreamassoc`` (or draft ``participant``) send list holds the stream id. Labels are
not in m-line order in general (OpenSIPS sends label 1 on the first m-line), so order is never
used for this step.

Then participants get roles by the first rule that decides anything, in this order:

1. an explicit ``media_line_order`` (``CUSTOMER_FIRST``/``AGENT_FIRST``) the operator set for
   this recording client: it applies to the order of the audio m-lines;
2. vendor hints: the SBC's ``callingParty`` flag per participant, read with the configured
   direction (the calling party is the customer in an inbound contact centre, the default, or
   the agent in an outbound one);
3. AOR patterns: regular expressions that recognise agents (``^sip:\\d{4}@pbx``) or
   customers;
4. the configured m-line order as a fallback, marked with low confidence.

With two streams, a rule that decides one of them decides the other as its opposite. Every
`StreamRole` carries a sentence of evidence and a confidence; a stream that carries both
parties (a mixed m-line) gets no role, and says so.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from sipscribe.sip.sdp import SessionDescription
from sipscribe.siprec.metadata import Participant, RecordingMetadata
from sipscribe.siprec.vendors import VendorInfo

__all__ = [
    "MediaLineOrder",
    "Role",
    "RoleConfig",
    "RoleDecision",
    "StreamRole",
    "assign_roles",
]

Role = Literal["agent", "customer"]
MediaLineOrder = Literal["CUSTOMER_FIRST", "AGENT_FIRST"]
Method = Literal["media_line_order", "vendor_hint", "aor_pattern", "mline_fallback", "none"]

CONFIDENCE = {
    "media_line_order": 0.95,
    "vendor_hint": 0.9,
    "vendor_hint_other": 0.85,
    "aor_pattern": 0.8,
    "aor_pattern_other": 0.7,
    "mline_fallback": 0.3,
}


def _other(role: Role) -> Role:
    return "customer" if role == "agent" else "agent"


def _order_roles(order: MediaLineOrder) -> tuple[Role, Role]:
    return ("customer", "agent") if order == "CUSTOMER_FIRST" else ("agent", "customer")


@functools.lru_cache(maxsize=64)
def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


@dataclass(frozen=True)
class RoleConfig:
    """How roles are decided for one recording client (see the module docstring)."""

    media_line_order: MediaLineOrder | None = None
    calling_party_role: Role = "customer"
    agent_aor_patterns: tuple[str, ...] = ()
    customer_aor_patterns: tuple[str, ...] = ()
    fallback_order: MediaLineOrder = "CUSTOMER_FIRST"

    def __post_init__(self) -> None:
        # Fail at configuration time, not on the first call.
        if self.media_line_order not in (None, "CUSTOMER_FIRST", "AGENT_FIRST"):
            raise ValueError(
                f"media_line_order {self.media_line_order!r} is not CUSTOMER_FIRST or AGENT_FIRST"
            )
        if self.fallback_order not in ("CUSTOMER_FIRST", "AGENT_FIRST"):
            raise ValueError(
                f"fallback_order {self.fallback_order!r} is not CUSTOMER_FIRST or AGENT_FIRST"
            )
        if self.calling_party_role not in ("agent", "customer"):
            raise ValueError(
                f"calling_party_role {self.calling_party_role!r} is not agent or customer"
            )
        for kind, patterns in (
            ("agent", self.agent_aor_patterns),
            ("customer", self.customer_aor_patterns),
        ):
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{kind} AOR pattern {pattern!r} is not a valid regex: {exc}"
                    ) from None


@dataclass(frozen=True)
class StreamRole:
    """The role of one recorded SDP audio stream and why we believe it."""

    label: str | None
    mline_index: int
    participant_id: str | None
    aor: str | None
    name: str | None
    role: Role | None
    evidence: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "mline_index": self.mline_index,
            "participant_id": self.participant_id,
            "aor": self.aor,
            "name": self.name,
            "role": self.role,
            "evidence": self.evidence,
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class RoleDecision:
    """The roles of every recorded stream of a call, recorded on the call as they are."""

    streams: tuple[StreamRole, ...]
    method: Method
    unassigned_participants: tuple[str, ...] = ()
    summary: str = ""

    @property
    def confidence(self) -> float:
        """The weakest confidence of any stream that got a role (0.0 if none did)."""
        scores = [s.confidence for s in self.streams if s.role is not None]
        return min(scores) if scores else 0.0

    def for_label(self, label: str) -> StreamRole | None:
        return next((s for s in self.streams if s.label == label), None)

    def for_mline(self, index: int) -> StreamRole | None:
        return next((s for s in self.streams if s.mline_index == index), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "summary": self.summary,
            "unassigned_participants": list(self.unassigned_participants),
            "streams": [s.to_dict() for s in self.streams],
        }


@dataclass
class _Stream:
    """Working state for one recorded m-line."""

    mline_index: int
    position: int  # among recorded audio m-lines
    label: str | None
    participant: Participant | None = None
    senders: tuple[str, ...] = ()
    mapping: str = ""
    mixed: bool = False
    role: Role | None = None
    evidence: str = ""
    confidence: float = 0.0
    extra: list[str] = field(default_factory=list)

    @property
    def who(self) -> str:
        if self.participant is None:
            return f"m-line {self.mline_index}"
        return self.participant.aor or self.participant.name or self.participant.id


def _map_streams(offer: SessionDescription, metadata: RecordingMetadata | None) -> list[_Stream]:
    streams: list[_Stream] = []
    for index, media in enumerate(offer.media):
        if media.kind.lower() != "audio" or media.port == 0:
            continue
        stream = _Stream(index, len(streams), media.label)
        streams.append(stream)
        if metadata is None:
            stream.mapping = "no metadata"
            continue
        if stream.label is None:
            stream.mapping = "m-line has no a=label"
            continue
        meta_stream = metadata.stream_by_label(stream.label)
        if meta_stream is None:
            stream.mapping = f"label {stream.label} is not in the metadata"
            continue
        senders = metadata.senders(meta_stream.id)
        inferred = ""
        if not senders:
            # Two-party call whose metadata lists only what each side receives.
            receivers = metadata.receivers(meta_stream.id)
            others = [p for p in metadata.participants if p not in receivers]
            if len(metadata.participants) == 2 and len(receivers) == 1 and len(others) == 1:
                senders = (others[0],)
                inferred = f" (inferred: received by {receivers[0]})"
        stream.senders = senders
        if len(senders) > 1:
            stream.mixed = True
            stream.mapping = f"label {stream.label} is sent by {len(senders)} participants"
        elif senders:
            stream.participant = metadata.participants.get(senders[0]) or Participant(senders[0])
            stream.mapping = f"label {stream.label} is sent by {senders[0]}{inferred}"
        elif meta_stream.mode == "mixed":
            stream.mixed = True
            stream.mapping = f"label {stream.label} is a mixed stream"
        else:
            stream.mapping = f"no participant sends label {stream.label}"
    return streams


def _decide_pair(
    candidates: list[_Stream], decided: dict[int, tuple[Role, str]], method: str
) -> bool:
    """Apply per-stream decisions, and with two streams the opposite role to the other one."""
    if not decided:
        return False
    for stream in candidates:
        if stream.mline_index in decided:
            stream.role, stream.evidence = decided[stream.mline_index]
            stream.confidence = CONFIDENCE[method]
    if len(candidates) == 2 and len(decided) == 1:
        known, unknown = sorted(candidates, key=lambda s: s.mline_index not in decided)
        assert known.role is not None
        unknown.role = _other(known.role)
        unknown.evidence = f"other party of {known.who} ({known.evidence})"
        unknown.confidence = CONFIDENCE[f"{method}_other"]
    return True


def _by_vendor(candidates: list[_Stream], vendor: VendorInfo | None, config: RoleConfig) -> bool:
    if vendor is None or not vendor.calling_party:
        return False
    decided: dict[int, tuple[Role, str]] = {}
    for stream in candidates:
        if stream.participant is None or stream.participant.id not in vendor.calling_party:
            continue
        calling = vendor.calling_party[stream.participant.id]
        role = config.calling_party_role if calling else _other(config.calling_party_role)
        decided[stream.mline_index] = (
            role,
            f"extensiondata callingParty={'true' if calling else 'false'} for {stream.who}; "
            f"the calling party is the {config.calling_party_role}",
        )
    return _decide_pair(candidates, decided, "vendor_hint")


def _by_aor(candidates: list[_Stream], config: RoleConfig) -> bool:
    agent = _compile(config.agent_aor_patterns)
    customer = _compile(config.customer_aor_patterns)
    if not agent and not customer:
        return False
    decided: dict[int, tuple[Role, str]] = {}
    for stream in candidates:
        if stream.participant is None:
            continue
        aors = stream.participant.aors
        agent_hit = next(((p, a) for p in agent for a in aors if p.search(a)), None)
        customer_hit = next(((p, a) for p in customer for a in aors if p.search(a)), None)
        if agent_hit and customer_hit:
            stream.extra.append(f"{stream.who} matches both agent and customer patterns")
            continue
        hit = agent_hit or customer_hit
        if hit is not None:
            role: Role = "agent" if agent_hit else "customer"
            decided[stream.mline_index] = (
                role,
                f"AOR {hit[1]} matches {role} pattern {hit[0].pattern!r}",
            )
    return _decide_pair(candidates, decided, "aor_pattern")


def _by_order(streams: list[_Stream], order: MediaLineOrder, method: str, what: str) -> None:
    roles = _order_roles(order)
    for position, stream in enumerate(streams):
        if position < 2:
            stream.role = roles[position]
            stream.evidence = f"{what} ({order}): audio m-line {position + 1} of {len(streams)}"
            stream.confidence = CONFIDENCE[method]
        else:
            stream.evidence = f"{what} ({order}) only covers two audio m-lines"


def assign_roles(
    offer: SessionDescription,
    metadata: RecordingMetadata | None = None,
    *,
    vendor: VendorInfo | None = None,
    config: RoleConfig | None = None,
) -> RoleDecision:
    """Decide agent/customer for every recorded audio m-line of `offer` (port 0 is skipped)."""
    config = config or RoleConfig()
    streams = _map_streams(offer, metadata)
    for stream in streams:
        if stream.mixed:
            stream.evidence = f"mixed stream: {stream.mapping}; no single role"
    candidates = [s for s in streams if not s.mixed]
    if len(streams) == 1 and candidates and candidates[0].participant is None:
        # One m-line and nobody known to send it alone: it carries the whole call.
        candidates[0].mixed = True
        candidates[0].evidence = f"single audio m-line ({candidates[0].mapping}); treated as mixed"
        candidates = []

    method: Method = "none"
    if candidates:
        if config.media_line_order is not None and len(streams) >= 2:
            _by_order(
                candidates, config.media_line_order, "media_line_order", "configured mediaLineOrder"
            )
            method = "media_line_order"
        elif _by_vendor(candidates, vendor, config):
            method = "vendor_hint"
        elif _by_aor(candidates, config):
            method = "aor_pattern"
        else:
            _by_order(candidates, config.fallback_order, "mline_fallback", "m-line order fallback")
            method = "mline_fallback"
        for stream in candidates:
            if stream.role is None and not stream.evidence:
                stream.evidence = f"no evidence for {stream.who} ({method} decided the others)"

    results = tuple(
        StreamRole(
            label=s.label,
            mline_index=s.mline_index,
            participant_id=s.participant.id if s.participant else None,
            aor=s.participant.aor if s.participant else None,
            name=s.participant.name if s.participant else None,
            role=s.role,
            evidence="; ".join([s.evidence, *s.extra]) if s.extra else s.evidence,
            confidence=s.confidence if s.role is not None else 0.0,
        )
        for s in streams
    )
    sending = {p for s in streams for p in s.senders}
    unassigned = tuple(p for p in (metadata.participants if metadata else {}) if p not in sending)
    summary = (
        ", ".join(
            f"m-line {r.mline_index} (label {r.label}) {r.aor or r.participant_id or '?'}: "
            f"{r.role or 'no role'}"
            for r in results
        )
        or "no recorded audio stream"
    )
    return RoleDecision(results, method, unassigned, f"{method}: {summary}")
