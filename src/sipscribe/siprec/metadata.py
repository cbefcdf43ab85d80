"""Recording metadata (RFC 7865): who is on the call and which SDP stream each one sends.

`parse_metadata(xml)` is a pure function from bytes to a frozen `RecordingMetadata`;
`merge_metadata(old, partial)` applies a ``datamode`` partial update (participants joining and
leaving, new streams) to what we knew.

The XML is untrusted input from the network, so it goes through defusedxml with DTDs
forbidden (no entity expansion, no billion laughs, no external fetches) and a size cap.

Real clients speak several dialects of the same schema, all accepted:

* namespace ``urn:ietf:params:xml:ns:recording:1`` (RFC 7865), the draft's
  ``urn:ietf:params:xml:ns:recording``, or none at all;
* identifier attributes as in the RFC (``participant_id``, ``stream_id``, ``session_id``,
  ``group_id``) or as in the drafts (``id``, ``streamid``, ``session``, ``participant``);
* ``send``/``recv`` and ``associate-time`` inside ``participant`` (draft format, still sent by
  Oracle/Acme Packet SBCs) as well as in ``participantstreamassoc`` and
  ``participantsessionassoc``;
* times with ``Z``, ``+00:00``, ``+0000``, fractional seconds, or no zone at all (read as UTC:
  Acme Packet SBCs write local-less UTC timestamps).

Vendor extensions (``<extensiondata>`` blocks, and elements of a foreign namespace placed
directly in a known element) are kept per element as `XmlNode` trees with their namespaces;
`sipscribe.siprec.vendors` reads them.
"""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, TypeVar
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as SafeET
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from sipscribe.siprec.errors import MetadataError

__all__ = [
    "MAX_METADATA_SIZE",
    "RECORDING_NAMESPACES",
    "CommunicationSession",
    "Group",
    "MediaStream",
    "MetadataError",
    "NameId",
    "Participant",
    "ParticipantSessionAssoc",
    "ParticipantStreamAssoc",
    "RecordingMetadata",
    "SessionRecordingAssoc",
    "XmlNode",
    "merge_metadata",
    "parse_metadata",
    "parse_metadata_time",
]

MAX_METADATA_SIZE = 256 * 1024
"""Largest metadata document we parse; a real one is a few KiB even for a conference."""

RECORDING_NAMESPACES = frozenset(
    {"urn:ietf:params:xml:ns:recording:1", "urn:ietf:params:xml:ns:recording", ""}
)
_MAX_DEPTH = 48
DataMode = Literal["complete", "partial"]


@dataclass(frozen=True)
class XmlNode:
    """An element of a vendor extension, kept whole: tag in Clark notation, text, children."""

    tag: str
    attributes: tuple[tuple[str, str], ...] = ()
    text: str = ""
    children: tuple[XmlNode, ...] = ()
    prefixes: tuple[tuple[str, str], ...] = ()  # (uri, prefix) as declared in the document

    @property
    def namespace(self) -> str:
        return self.tag[1:].split("}", 1)[0] if self.tag.startswith("{") else ""

    @property
    def local(self) -> str:
        return self.tag.rsplit("}", 1)[-1]

    def attribute(self, name: str) -> str | None:
        """Attribute by local name (namespace ignored)."""
        for key, value in self.attributes:
            if key.rsplit("}", 1)[-1] == name:
                return value
        return None

    def iter(self) -> Iterator[XmlNode]:
        """This node and every descendant, document order."""
        yield self
        for child in self.children:
            yield from child.iter()

    def find(self, local: str) -> XmlNode | None:
        """The first descendant (or self) with this local name, any namespace."""
        return next((node for node in self.iter() if node.local == local), None)

    def to_xml(self) -> str:
        """Serialise with the document's prefixes and the namespace declarations it needs."""
        known = dict(self.prefixes)
        used: dict[str, str] = {}
        self._render(known, used)  # first pass: learn which namespaces are used
        decls = "".join(
            f" xmlns:{prefix}={quoteattr(uri)}" if prefix else f" xmlns={quoteattr(uri)}"
            for uri, prefix in used.items()
        )
        return self._render(known, used, decls)

    @staticmethod
    def _qname(tag: str, known: dict[str, str], used: dict[str, str], *, attr: bool) -> str:
        if not tag.startswith("{"):
            return tag
        uri, local = tag[1:].split("}", 1)
        prefix = used.get(uri)
        if prefix is None:
            prefix = known.get(uri, "ns")
            taken = set(used.values())
            if prefix in taken or (attr and not prefix):
                base = prefix or "ns"
                prefix = next(
                    f"{base}{n}" for n in range(len(taken) + 1) if f"{base}{n}" not in taken
                )
            used[uri] = prefix
        if attr and not prefix:  # an unprefixed attribute is in no namespace
            return tag
        return f"{prefix}:{local}" if prefix else local

    def _render(self, known: dict[str, str], used: dict[str, str], decls: str = "") -> str:
        name = self._qname(self.tag, known, used, attr=False)
        attrs = "".join(
            f" {self._qname(key, known, used, attr=True)}={quoteattr(value)}"
            for key, value in self.attributes
        )
        inner = escape(self.text) + "".join(c._render(known, used) for c in self.children)
        start = f"<{name}{decls}{attrs}"
        return f"{start}>{inner}</{name}>" if inner else f"{start}/>"


@dataclass(frozen=True)
class NameId:
    """``<nameID aor=...><name>...</name></nameID>``: one identity of a participant."""

    aor: str | None
    names: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        return self.names[0] if self.names else None


@dataclass(frozen=True)
class Group:
    """``<group>``: communication sessions recorded together."""

    id: str
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None
    extensions: tuple[XmlNode, ...] = ()


@dataclass(frozen=True)
class CommunicationSession:
    """``<session>``: the call being recorded (not the recording session itself)."""

    id: str
    sip_session_ids: tuple[str, ...] = ()
    group_ref: str | None = None
    start_time: datetime | None = None
    stop_time: datetime | None = None
    associate_time: datetime | None = None  # draft format
    disassociate_time: datetime | None = None  # draft format
    extensions: tuple[XmlNode, ...] = ()


@dataclass(frozen=True)
class Participant:
    """``<participant>``: a party of the call, with one or more identities."""

    id: str
    name_ids: tuple[NameId, ...] = ()
    session_ref: str | None = None  # draft format: participant session="..."
    extensions: tuple[XmlNode, ...] = ()

    @property
    def aor(self) -> str | None:
        """The first address of record, the one to match agent patterns against."""
        return next((n.aor for n in self.name_ids if n.aor), None)

    @property
    def aors(self) -> tuple[str, ...]:
        return tuple(n.aor for n in self.name_ids if n.aor)

    @property
    def name(self) -> str | None:
        return next((n.name for n in self.name_ids if n.name), None)


@dataclass(frozen=True)
class MediaStream:
    """``<stream>``: one SDP media stream, tied to an m-line by its ``a=label``."""

    id: str
    session_ref: str | None = None
    label: str | None = None
    mode: str | None = None  # draft format: separate | mixed
    associate_time: datetime | None = None  # draft format
    disassociate_time: datetime | None = None  # draft format
    extensions: tuple[XmlNode, ...] = ()


@dataclass(frozen=True)
class SessionRecordingAssoc:
    """``<sessionrecordingassoc>``: when a session entered and left this recording."""

    session_id: str
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None
    extensions: tuple[XmlNode, ...] = ()


@dataclass(frozen=True)
class ParticipantSessionAssoc:
    """``<participantsessionassoc>``: when a participant joined and left a session."""

    participant_id: str
    session_id: str | None = None
    associate_time: datetime | None = None
    disassociate_time: datetime | None = None
    extensions: tuple[XmlNode, ...] = ()


@dataclass(frozen=True)
class ParticipantStreamAssoc:
    """``<participantstreamassoc>``: the streams a participant sends and receives."""

    participant_id: str
    send: tuple[str, ...] = ()
    recv: tuple[str, ...] = ()
    extensions: tuple[XmlNode, ...] = ()


@dataclass(frozen=True)
class RecordingMetadata:
    """One metadata document (or the merge of several); every map is keyed by element id."""

    datamode: DataMode = "complete"
    groups: dict[str, Group] = field(default_factory=dict)
    sessions: dict[str, CommunicationSession] = field(default_factory=dict)
    participants: dict[str, Participant] = field(default_factory=dict)
    streams: dict[str, MediaStream] = field(default_factory=dict)
    session_recording_assocs: dict[str, SessionRecordingAssoc] = field(default_factory=dict)
    participant_session_assocs: dict[tuple[str, str | None], ParticipantSessionAssoc] = field(
        default_factory=dict
    )
    participant_stream_assocs: dict[str, ParticipantStreamAssoc] = field(default_factory=dict)
    extensions: tuple[XmlNode, ...] = ()

    def stream_by_label(self, label: str) -> MediaStream | None:
        """The metadata stream an SDP m-line's ``a=label`` refers to."""
        return next((s for s in self.streams.values() if s.label == label), None)

    def senders(self, stream_id: str) -> tuple[str, ...]:
        """Ids of the participants that send `stream_id` (two or more: a mixed stream)."""
        return tuple(
            a.participant_id for a in self.participant_stream_assocs.values() if stream_id in a.send
        )

    def receivers(self, stream_id: str) -> tuple[str, ...]:
        return tuple(
            a.participant_id for a in self.participant_stream_assocs.values() if stream_id in a.recv
        )

    def is_active(self, participant_id: str) -> bool:
        """False once every association of the participant has a disassociate-time."""
        assocs = [
            a
            for a in self.participant_session_assocs.values()
            if a.participant_id == participant_id
        ]
        return not assocs or any(a.disassociate_time is None for a in assocs)

    @property
    def sip_session_ids(self) -> tuple[str, ...]:
        return tuple(i for s in self.sessions.values() for i in s.sip_session_ids)


# ---------------------------------------------------------------------------------------------
# Times

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,12}))?"
    r"\s*(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?"
)


def parse_metadata_time(text: str) -> datetime:
    """An RFC 3339 time as clients really write it, as an aware datetime.

    Accepts ``Z``, ``+00:00``, ``+0000``, ``+00``, fractional seconds of any length
    (truncated to microseconds), and no offset at all (taken as UTC). A leap second (``:60``)
    becomes ``:59``.
    """
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise MetadataError(f"metadata time {text.strip()[:40]!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    micro = int((fraction + "000000")[:6])
    if match.group(9):
        sign = -1 if match.group(9) == "-" else 1
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11) or 0))
        if offset >= timedelta(hours=24):
            raise MetadataError(f"metadata time {text.strip()[:40]!r} has an invalid offset")
        tz: timezone = timezone(sign * offset)
    else:
        tz = UTC
    try:
        return datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=tz)
    except ValueError:
        raise MetadataError(f"metadata time {text.strip()[:40]!r} is not a valid date") from None


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_metadata(xml: bytes | str) -> RecordingMetadata:
    """Parse an ``application/rs-metadata+xml`` body; raises `MetadataError` naming the fault."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    if len(data) > MAX_METADATA_SIZE:
        raise MetadataError(
            f"metadata is {len(data)} bytes, over the {MAX_METADATA_SIZE} byte limit"
        )
    if not data.strip():
        raise MetadataError("metadata is empty")
    root, prefixes = _parse_xml(data)
    return _Reader(prefixes).read(root)


def _parse_xml(data: bytes) -> tuple[ET.Element, tuple[tuple[str, str], ...]]:
    prefixes: dict[str, str] = {}
    root: ET.Element | None = None
    try:
        events = SafeET.iterparse(io.BytesIO(data), events=("start-ns", "start"), forbid_dtd=True)
        for event, item in events:
            if event == "start-ns":
                prefix, uri = item
                prefixes.setdefault(uri, prefix)
            elif root is None:
                root = item
    except DTDForbidden:
        raise MetadataError("metadata has a DTD, which is not allowed") from None
    except EntitiesForbidden:
        raise MetadataError("metadata declares XML entities, which are not allowed") from None
    except ExternalReferenceForbidden:
        raise MetadataError("metadata references an external resource") from None
    except ET.ParseError as exc:
        raise MetadataError(f"metadata is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the declaration
        raise MetadataError(f"metadata cannot be read as XML: {exc}") from None
    if root is None:
        raise MetadataError("metadata has no root element")
    return root, tuple(prefixes.items())


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, local = tag[1:].split("}", 1)
        return uri, local
    return "", tag


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


_T = TypeVar("_T")
_K = TypeVar("_K")


class _Reader:
    """Walks the tree once, collecting each known element into its map."""

    def __init__(self, prefixes: tuple[tuple[str, str], ...]) -> None:
        self.prefixes = prefixes
        self.groups: dict[str, Group] = {}
        self.sessions: dict[str, CommunicationSession] = {}
        self.participants: dict[str, Participant] = {}
        self.streams: dict[str, MediaStream] = {}
        self.session_recording: dict[str, SessionRecordingAssoc] = {}
        self.participant_sessions: dict[tuple[str, str | None], ParticipantSessionAssoc] = {}
        self.participant_streams: dict[str, ParticipantStreamAssoc] = {}

    def read(self, root: ET.Element) -> RecordingMetadata:
        namespace, local = _split(root.tag)
        if local != "recording":
            raise MetadataError(f"metadata root element is {local!r}, not 'recording'")
        if namespace not in RECORDING_NAMESPACES:
            raise MetadataError(f"metadata namespace {namespace!r} is not the recording one")
        datamode: DataMode = "complete"
        handlers = {
            "group": self._group,
            "session": self._session,
            "participant": self._participant,
            "stream": self._stream,
            "sessionrecordingassoc": self._session_recording,
            "participantsessionassoc": self._participant_session,
            "participantstreamassoc": self._participant_stream,
        }
        extensions: list[XmlNode] = []
        for child in root:
            ns, name = _split(child.tag)
            if ns not in RECORDING_NAMESPACES or name == "extensiondata":
                extensions.append(self._node(child))
            elif name == "datamode":
                value = _text(child).lower()
                if value not in ("complete", "partial"):
                    raise MetadataError(
                        f"metadata datamode {_text(child)[:20]!r} is not complete or partial"
                    )
                datamode = "complete" if value == "complete" else "partial"
            elif name in handlers:
                handlers[name](child)
            # Unknown elements of our own namespace (future RFC additions) are skipped.
        return RecordingMetadata(
            datamode=datamode,
            groups=self.groups,
            sessions=self.sessions,
            participants=self.participants,
            streams=self.streams,
            session_recording_assocs=self.session_recording,
            participant_session_assocs=self.participant_sessions,
            participant_stream_assocs=self.participant_streams,
            extensions=tuple(extensions),
        )

    # -- helpers ------------------------------------------------------------------------------

    def _node(self, element: ET.Element, depth: int = 0) -> XmlNode:
        if depth > _MAX_DEPTH:
            raise MetadataError(f"metadata extension is nested over {_MAX_DEPTH} levels deep")
        return XmlNode(
            tag=element.tag,
            attributes=tuple(element.attrib.items()),
            text=(element.text or "").strip(),
            children=tuple(self._node(child, depth + 1) for child in element),
            prefixes=self.prefixes if depth == 0 else (),
        )

    def _extensions(self, element: ET.Element) -> tuple[XmlNode, ...]:
        """``<extensiondata>`` children and foreign-namespace children, kept as trees."""
        found: list[XmlNode] = []
        for child in element:
            ns, name = _split(child.tag)
            if name == "extensiondata" or ns not in RECORDING_NAMESPACES:
                found.append(self._node(child))
        return tuple(found)

    @staticmethod
    def _children(element: ET.Element, local: str) -> Iterator[ET.Element]:
        for child in element:
            ns, name = _split(child.tag)
            if name == local and ns in RECORDING_NAMESPACES:
                yield child

    def _child_text(self, element: ET.Element, local: str) -> str | None:
        child = next(self._children(element, local), None)
        if child is None:
            return None
        return _text(child) or None

    def _time(self, element: ET.Element, local: str) -> datetime | None:
        text = self._child_text(element, local)
        return None if text is None else parse_metadata_time(text)

    @staticmethod
    def _id(element: ET.Element, kind: str, names: tuple[str, ...]) -> str:
        for name in names:
            value = element.get(name)
            if value is not None and value.strip():
                return value.strip()
        raise MetadataError(f"metadata {kind} has no {names[0]} attribute")

    @staticmethod
    def _ref(element: ET.Element, names: tuple[str, ...]) -> str | None:
        for name in names:
            value = element.get(name)
            if value is not None and value.strip():
                return value.strip()
        return None

    @staticmethod
    def _put(table: dict[_K, _T], key: _K, value: _T) -> None:
        """Repeated elements in one document describe the same object: merge them."""
        table[key] = _merge(table[key], value) if key in table else value

    # -- elements -----------------------------------------------------------------------------

    def _group(self, element: ET.Element) -> None:
        group_id = self._id(element, "group", ("group_id", "id"))
        self._put(
            self.groups,
            group_id,
            Group(
                group_id,
                associate_time=self._time(element, "associate-time"),
                disassociate_time=self._time(element, "disassociate-time"),
                extensions=self._extensions(element),
            ),
        )

    def _session(self, element: ET.Element) -> None:
        session_id = self._id(element, "session", ("session_id", "id"))
        sip_ids = tuple(_text(c) for c in self._children(element, "sipSessionID") if _text(c))
        self._put(
            self.sessions,
            session_id,
            CommunicationSession(
                session_id,
                sip_session_ids=sip_ids,
                group_ref=self._child_text(element, "group-ref") or self._ref(element, ("group",)),
                start_time=self._time(element, "start-time"),
                stop_time=self._time(element, "stop-time"),
                associate_time=self._time(element, "associate-time"),
                disassociate_time=self._time(element, "disassociate-time"),
                extensions=self._extensions(element),
            ),
        )

    def _participant(self, element: ET.Element) -> None:
        participant_id = self._id(element, "participant", ("participant_id", "id"))
        session_ref = self._ref(element, ("session_id", "session"))
        name_ids: list[NameId] = []
        for name_id in self._children(element, "nameID"):
            aor = name_id.get("aor") or self._child_text(name_id, "aor")
            names = tuple(_text(n) for n in self._children(name_id, "name") if _text(n))
            name_ids.append(NameId(aor.strip() if aor else None, names))
        for aor_element in self._children(element, "aor"):  # very early drafts
            if _text(aor_element):
                name_ids.append(NameId(_text(aor_element), ()))
        if not name_ids and element.get("name"):
            name_ids.append(NameId(None, (element.get("name", "").strip(),)))
        self._put(
            self.participants,
            participant_id,
            Participant(participant_id, tuple(name_ids), session_ref, self._extensions(element)),
        )
        # Draft format: send/recv and association times live inside the participant.
        send = tuple(_text(c) for c in self._children(element, "send") if _text(c))
        recv = tuple(_text(c) for c in self._children(element, "recv") if _text(c))
        if send or recv:
            self._add_stream_assoc(ParticipantStreamAssoc(participant_id, send, recv))
        associate = self._time(element, "associate-time")
        disassociate = self._time(element, "disassociate-time")
        if associate or disassociate:
            key = (participant_id, session_ref)
            self._put(
                self.participant_sessions,
                key,
                ParticipantSessionAssoc(participant_id, session_ref, associate, disassociate),
            )

    def _stream(self, element: ET.Element) -> None:
        stream_id = self._id(element, "stream", ("stream_id", "id", "streamid"))
        self._put(
            self.streams,
            stream_id,
            MediaStream(
                stream_id,
                session_ref=self._ref(element, ("session_id", "session")),
                label=self._child_text(element, "label") or self._ref(element, ("label",)),
                mode=self._child_text(element, "mode") or self._ref(element, ("mode",)),
                associate_time=self._time(element, "associate-time"),
                disassociate_time=self._time(element, "disassociate-time"),
                extensions=self._extensions(element),
            ),
        )

    def _session_recording(self, element: ET.Element) -> None:
        session_id = self._id(element, "sessionrecordingassoc", ("session_id", "session", "id"))
        self._put(
            self.session_recording,
            session_id,
            SessionRecordingAssoc(
                session_id,
                associate_time=self._time(element, "associate-time"),
                disassociate_time=self._time(element, "disassociate-time"),
                extensions=self._extensions(element),
            ),
        )

    def _participant_session(self, element: ET.Element) -> None:
        participant_id = self._id(
            element, "participantsessionassoc", ("participant_id", "participant", "id")
        )
        session_id = self._ref(element, ("session_id", "session"))
        key = (participant_id, session_id)
        self._put(
            self.participant_sessions,
            key,
            ParticipantSessionAssoc(
                participant_id,
                session_id,
                associate_time=self._time(element, "associate-time"),
                disassociate_time=self._time(element, "disassociate-time"),
                extensions=self._extensions(element),
            ),
        )

    def _participant_stream(self, element: ET.Element) -> None:
        participant_id = self._id(
            element, "participantstreamassoc", ("participant_id", "participant", "id")
        )
        self._add_stream_assoc(
            ParticipantStreamAssoc(
                participant_id,
                send=tuple(_text(c) for c in self._children(element, "send") if _text(c)),
                recv=tuple(_text(c) for c in self._children(element, "recv") if _text(c)),
                extensions=self._extensions(element),
            )
        )

    def _add_stream_assoc(self, assoc: ParticipantStreamAssoc) -> None:
        """Within one document, send/recv lists for a participant add up."""
        old = self.participant_streams.get(assoc.participant_id)
        if old is not None:
            assoc = ParticipantStreamAssoc(
                assoc.participant_id,
                send=_union(old.send, assoc.send),
                recv=_union(old.recv, assoc.recv),
                extensions=old.extensions + assoc.extensions,
            )
        self.participant_streams[assoc.participant_id] = assoc


def _union(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(first + second))


def _merge(old: _T, new: _T) -> _T:
    """Field by field: what `new` states wins, what it leaves out (None, ()) keeps `old`."""
    changes = {}
    for f in dataclasses.fields(old):  # type: ignore[arg-type]
        value = getattr(new, f.name)
        if value is not None and value != ():
            changes[f.name] = value
    return dataclasses.replace(old, **changes)  # type: ignore[type-var]


def _merge_table(old: dict[_K, _T], new: dict[_K, _T]) -> dict[_K, _T]:
    merged = dict(old)
    for key, value in new.items():
        merged[key] = _merge(merged[key], value) if key in merged else value
    return merged


def merge_metadata(old: RecordingMetadata, update: RecordingMetadata) -> RecordingMetadata:
    """Apply an update (RFC 7865 §6.2) to the metadata we hold; the result is complete.

    A ``complete`` update replaces everything. A ``partial`` one only carries what changed:
    elements are merged by id (stated fields win, omitted ones are kept), so a
    ``participantsessionassoc`` with only a ``disassociate-time`` marks a participant as
    having left without losing when they joined. A participant's ``participantstreamassoc``
    replaces the old one: its send/recv lists are the participant's current streams.
    """
    if update.datamode == "complete":
        return update
    stream_assocs = dict(old.participant_stream_assocs)
    stream_assocs.update(update.participant_stream_assocs)
    return RecordingMetadata(
        datamode="complete",
        groups=_merge_table(old.groups, update.groups),
        sessions=_merge_table(old.sessions, update.sessions),
        participants=_merge_table(old.participants, update.participants),
        streams=_merge_table(old.streams, update.streams),
        session_recording_assocs=_merge_table(
            old.session_recording_assocs, update.session_recording_assocs
        ),
        participant_session_assocs=_merge_table(
            old.participant_session_assocs, update.participant_session_assocs
        ),
        participant_stream_assocs=stream_assocs,
        extensions=update.extensions or old.extensions,
    )
