"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3, RFC 5626 §3.5.1).

A stream carries messages back to back, split at arbitrary points by the
network. :class:`StreamFramer` buffers bytes until one whole message is there —
header section up to the empty line, then exactly Content-Length octets of
body — and hands it out; pipelined messages come out one by one.

Between messages a peer may send keep-alives: ``CRLFCRLF`` is an RFC 5626
ping, which we report so the endpoint can answer the ``CRLF`` pong; a lone
``CRLF`` (a pong, or the stray CRLF RFC 3261 §7.5 tells us to ignore) is
skipped.

Like h11's ``max_incomplete_event_size``, the buffer is bounded: a peer that
sends more than ``max_message_size`` bytes without completing a message, or
announces a larger Content-Length, gets a :class:`SipParseError` (413). Any
framing error is fatal to the connection — on a stream there is no way to find
the start of the next message — so the framer stays failed afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.message import DEFAULT_LIMITS, ParseLimits

__all__ = ["PING", "KeepAlivePing", "StreamFramer"]

_END = b"\r\n\r\n"


@dataclass(frozen=True)
class KeepAlivePing:
    """A ``CRLFCRLF`` keep-alive ping (RFC 5626 §3.5.1); answer with ``CRLF``."""


PING = KeepAlivePing()


class StreamFramer:
    """Incremental splitter of one connection's inbound bytes.

    >>> framer = StreamFramer()
    >>> framer.feed(data)
    >>> while (item := framer.next_item()) is not None:
    ...     handle(item)   # bytes of one message, or PING
    """

    def __init__(self, *, limits: ParseLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scan_from = 0
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out."""
        return len(self._buffer)

    @property
    def failed(self) -> bool:
        return self._error is not None

    def feed(self, data: bytes) -> None:
        """Append received bytes. Cheap; the work happens in :meth:`next_item`."""
        if self._error is None:
            self._buffer += data

    def next_item(self) -> bytes | KeepAlivePing | None:
        """The next whole message (as bytes), :data:`PING`, or ``None`` for "need more".

        Raises :class:`SipParseError` on a framing error, then on every call.
        """
        if self._error is not None:
            raise self._error
        buf = self._buffer
        while buf[:2] == b"\r\n":
            if buf[:4] == _END:
                del buf[:4]
                self._scan_from = 0
                return PING
            if len(buf) < 4 and _END.startswith(bytes(buf)):
                return None  # may still grow into a ping
            del buf[:2]
            self._scan_from = 0
        if not buf or buf == b"\r":
            return None
        end = buf.find(_END, self._scan_from)
        if end < 0:
            self._scan_from = max(0, len(buf) - 3)
            if len(buf) > self._limits.max_message_size:
                self._fail(
                    f"header section exceeds {self._limits.max_message_size} bytes", status=413
                )
            return None
        length = self._content_length(bytes(buf[:end]))
        total = end + 4 + length
        if total > self._limits.max_message_size:
            self._fail(f"message exceeds {self._limits.max_message_size} bytes", status=413)
        if len(buf) < total:
            return None
        message = bytes(buf[:total])
        del buf[:total]
        self._scan_from = 0
        return message

    def _fail(self, reason: str, *, status: int = 400) -> None:
        self._error = SipParseError(reason, status=status)
        self._buffer.clear()
        raise self._error

    def _content_length(self, head: bytes) -> int:
        """Find Content-Length (or compact ``l``) in a raw header section."""
        fields: list[bytes] = []
        for line in head.split(b"\r\n")[1:]:
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1] += b" " + line.strip(b" \t")  # undo folding
            else:
                fields.append(line)
        found: list[bytes] = []
        for line in fields:
            name, colon, value = line.partition(b":")
            if colon and name.strip(b" \t").lower() in (b"content-length", b"l"):
                found.append(value.strip(b" \t"))
        if not found:
            self._fail("Content-Length is required on stream transports")
        if len(found) > 1:
            self._fail("message has more than one Content-Length header")
        value = found[0]
        if not value.isdigit():
            self._fail(f"Content-Length {value[:20].decode('latin-1')!r} is not a number")
        if len(value) > 12:
            self._fail(f"message exceeds {self._limits.max_message_size} bytes", status=413)
        return int(value)
