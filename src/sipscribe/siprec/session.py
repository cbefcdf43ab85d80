"""One recording session (RFC 7866) from the SRS's side, without I/O.

``RecordingSession.from_invite`` validates a SIPREC INVITE and parses everything the
call needs (SDP offer, rs-metadata, vendor identifiers, roles); ``answer`` builds our
SDP from local ports the caller has already bound (ports are data here). A re-INVITE
or UPDATE goes through ``reoffer``, which returns what changed: streams added (new
m-lines), removed (port 0 now), put on hold (``a=inactive``/``recvonly``, or the
``0.0.0.0`` address) or resumed, plus merged metadata and re-decided roles. Anything
unusable raises a ``SiprecError`` carrying the status and Warning to answer with.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sipscribe.sip.sdp import SdpError, SessionDescription
from sipscribe.siprec.answer import DEFAULT_CODECS, AcceptedStream, Answer, build_answer
from sipscribe.siprec.errors import SiprecError
from sipscribe.siprec.metadata import RecordingMetadata, merge_metadata, parse_metadata
from sipscribe.siprec.multipart import parse_recording_body
from sipscribe.siprec.roles import RoleConfig, RoleDecision, assign_roles
from sipscribe.siprec.vendors import (
    DEFAULT_ID_PRIORITY,
    VendorInfo,
    external_id,
    extract_vendor_info,
)


class NotSiprec(SiprecError):
    """An INVITE that is not a recording session, refused unless plain calls are recorded."""

    default_status = 403


@dataclass(frozen=True)
class SrsConfig:
    """How this SRS treats recording clients."""

    record_plain_calls: bool = False
    roles: RoleConfig = field(default_factory=RoleConfig)
    id_priority: tuple[str, ...] = DEFAULT_ID_PRIORITY
    capture_headers: tuple[str, ...] = ()
    codecs: frozenset[str] = DEFAULT_CODECS


def is_siprec_request(headers: Any, body: bytes, content_type: str | None) -> bool:
    """RFC 7866 §6.1.1: ``Require: siprec``, ``+sip.src`` in Contact, or rs-metadata."""
    require = ",".join(headers.get_all("Require")).lower()
    supported = ",".join(headers.get_all("Supported")).lower()
    contact = ",".join(headers.get_all("Contact")).lower()
    if "siprec" in require or "siprec" in supported or "+sip.src" in contact:
        return True
    return bool(content_type and "multipart" in content_type.lower() and b"rs-metadata" in body)


@dataclass(frozen=True)
class StreamChange:
    """How one m-line changed in a re-offer."""

    mline_index: int
    label: str | None
    #: added | removed | held | resumed | updated
    kind: str
    accepted: AcceptedStream | None


@dataclass(frozen=True)
class Reoffer:
    answer: Answer
    changes: tuple[StreamChange, ...]
    roles_changed: bool


class RecordingSession:
    """State of one SIPREC dialog: offer, metadata, roles, our answer."""

    def __init__(
        self,
        *,
        sip_call_id: str,
        offer: SessionDescription,
        metadata: RecordingMetadata | None,
        vendor: VendorInfo,
        roles: RoleDecision,
        config: SrsConfig,
        is_siprec: bool,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.sip_call_id = sip_call_id
        self.offer = offer
        self.metadata = metadata
        self.vendor = vendor
        self.roles = roles
        self.config = config
        self.is_siprec = is_siprec
        self.external_id = external_id(vendor, config.id_priority) or sip_call_id
        self.last_answer: Answer | None = None
        self._held: dict[int, bool] = {}

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def from_invite(
        cls, *, headers: Any, body: bytes, call_id: str, config: SrsConfig | None = None
    ) -> RecordingSession:
        """Validate an initial INVITE; raise ``SiprecError`` with the status to answer."""
        config = config or SrsConfig()
        content_type = headers.get("Content-Type")
        siprec = is_siprec_request(headers, body, content_type)
        if not siprec and not config.record_plain_calls:
            raise NotSiprec(
                "not a SIPREC INVITE (no Require: siprec, no +sip.src Contact, no rs-metadata); "
                "this server records SIPREC sessions only"
            )
        if not body:
            raise SiprecError(
                "INVITE without an SDP offer (offerless INVITE not supported)", status=488
            )
        recording = parse_recording_body(body, content_type)
        try:
            offer = SessionDescription.parse(recording.sdp)
        except SdpError as exc:
            raise SiprecError(f"SDP offer: {exc}") from exc
        metadata = parse_metadata(recording.metadata) if recording.metadata else None
        vendor = extract_vendor_info(headers, metadata, extra_headers=config.capture_headers)
        roles = assign_roles(offer, metadata, vendor=vendor, config=config.roles)
        return cls(
            sip_call_id=call_id,
            offer=offer,
            metadata=metadata,
            vendor=vendor,
            roles=roles,
            config=config,
            is_siprec=siprec,
        )

    @property
    def audio_mlines(self) -> int:
        """How many local ports an answer may need (one per audio m-line with a port)."""
        return sum(1 for m in self.offer.media if m.kind == "audio" and m.port != 0)

    def answer(self, *, address: str, ports: Callable[[], int] | list[int]) -> Answer:
        ans = build_answer(
            self.offer,
            address=address,
            ports=ports,
            codecs=self.config.codecs,
            previous=self.last_answer,
        )
        self.last_answer = ans
        self._held = {s.mline_index: _is_hold(s) for s in ans.accepted}
        return ans

    def held(self, mline_index: int) -> bool:
        return self._held.get(mline_index, False)

    # -- media-line order from start-streaming -------------------------------------------
    def apply_media_line_order(self, order: str) -> RoleDecision:
        cfg = RoleConfig(
            media_line_order=order,  # type: ignore[arg-type]
            calling_party_role=self.config.roles.calling_party_role,
            agent_aor_patterns=self.config.roles.agent_aor_patterns,
            customer_aor_patterns=self.config.roles.customer_aor_patterns,
            fallback_order=self.config.roles.fallback_order,
        )
        self.roles = assign_roles(self.offer, self.metadata, vendor=self.vendor, config=cfg)
        return self.roles

    # -- re-INVITE / UPDATE --------------------------------------------------------------
    def reoffer(
        self,
        *,
        headers: Mapping[str, str] | Any,
        body: bytes,
        address: str,
        ports: Callable[[], int],
    ) -> Reoffer:
        """Apply a new offer in the dialog; return our answer and what changed."""
        if self.last_answer is None:
            raise SiprecError("re-offer before the initial answer", status=491)
        if not body:  # a refresh without SDP (session timer): same answer again
            return Reoffer(self.last_answer, (), False)
        recording = parse_recording_body(body, headers.get("Content-Type"))
        try:
            offer = SessionDescription.parse(recording.sdp)
        except SdpError as exc:
            raise SiprecError(f"SDP re-offer: {exc}") from exc
        if len(offer.media) < len(self.offer.media):
            raise SiprecError(
                f"re-offer has {len(offer.media)} m-lines, fewer than the {len(self.offer.media)} "
                "offered before (RFC 3264 §8: m-lines are never removed, only set to port 0)",
                status=488,
            )
        roles_changed = False
        if recording.metadata:
            update = parse_metadata(recording.metadata)
            self.metadata = merge_metadata(self.metadata, update) if self.metadata else update
            roles_changed = True
        previous = self.last_answer
        self.offer = offer
        answer = build_answer(
            offer, address=address, ports=ports, codecs=self.config.codecs, previous=previous
        )
        new_roles = assign_roles(offer, self.metadata, vendor=self.vendor, config=self.config.roles)
        if new_roles.to_dict() != self.roles.to_dict():
            roles_changed = True
        self.roles = new_roles
        changes: list[StreamChange] = []
        before = {s.mline_index: s for s in previous.accepted}
        after = {s.mline_index: s for s in answer.accepted}
        for idx in sorted(set(before) | set(after)):
            old, new = before.get(idx), after.get(idx)
            label = (new or old).label  # type: ignore[union-attr]
            if old is None and new is not None:
                changes.append(StreamChange(idx, label, "added", new))
                self._held[idx] = _is_hold(new)
            elif new is None:
                changes.append(StreamChange(idx, label, "removed", None))
                self._held.pop(idx, None)
            else:
                was, now = self._held.get(idx, False), _is_hold(new)
                if now and not was:
                    changes.append(StreamChange(idx, label, "held", new))
                elif was and not now:
                    changes.append(StreamChange(idx, label, "resumed", new))
                elif (old.remote_address, old.remote_port, old.payload_types, old.crypto) != (
                    new.remote_address,
                    new.remote_port,
                    new.payload_types,
                    new.crypto,
                ):
                    changes.append(StreamChange(idx, label, "updated", new))
                self._held[idx] = now
        self.last_answer = answer
        return Reoffer(answer, tuple(changes), roles_changed)

    def describe(self) -> dict[str, Any]:
        """What the call record keeps: identifiers, participants and how roles were decided."""
        participants = []
        if self.metadata is not None:
            for p in self.metadata.participants.values():
                name = next((n.name for n in p.name_ids if n.name), None)
                participants.append({"id": p.id, "aor": p.aor, "name": name})
        return {
            "session_id": self.id,
            "sip_call_id": self.sip_call_id,
            "external_id": self.external_id,
            "siprec": self.is_siprec,
            "vendor": self.vendor.vendor,
            "identifiers": dict(self.vendor.identifiers),
            "participants": participants,
            "roles": self.roles.to_dict(),
        }


def _is_hold(stream: AcceptedStream) -> bool:
    """Hold per RFC 3264 §8.4 and RFC 2543 (``c=0.0.0.0``): nothing will be sent to us."""
    return (
        stream.offered_direction in ("inactive", "recvonly")
        or stream.remote_address is None
        or stream.direction == "inactive"
    )
