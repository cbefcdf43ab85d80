"""Errors raised by the SIP core.

There are two kinds of failure and they must not be confused:

* :class:`SipParseError` — the *peer* sent something malformed. It carries the
  status code we owe the sender (RFC 3261 §21.4: 400, 413, 414, 416, 505), so
  the edge can answer a request it could still read, or drop the input
  silently when it cannot (RFC 3261 §18.3, garbage on UDP, bad responses).
* :class:`SipStateError` — *our* application misused the sans-I/O API (answering
  a transaction twice, using an unknown dialog). That is a programming bug,
  never something a peer can trigger.
"""

from __future__ import annotations

__all__ = ["SipParseError", "SipStateError"]


class SipParseError(ValueError):
    """Malformed SIP input; `status` is the response we owe the sender.

    The message names the object and the fault ("Via has an empty parameter"),
    because it is copied verbatim into ``Warning: 399 <host> "<problem>"``.
    """

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, status={self.status})"


class SipStateError(RuntimeError):
    """The application asked the SIP core for something its state forbids."""
