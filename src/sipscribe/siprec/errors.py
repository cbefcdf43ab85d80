"""Errors of the SIPREC layer: each names what was wrong and carries the answer we owe.

The session layer turns one of these into a final response to the INVITE: `status` is the
response code and `warning_header()` the RFC 3261 §20.43 Warning value that tells the recording
client's operator what to fix (a 400 with no reason is a support ticket).
"""

from __future__ import annotations

__all__ = ["AnswerError", "MetadataError", "MultipartError", "SiprecError"]


class SiprecError(ValueError):
    """A recording request we cannot use; `status` is the SIP response to send."""

    default_status = 400

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = self.default_status if status is None else status

    def warning_header(self, agent: str, *, code: int = 399) -> str:
        """The Warning header value: ``399 <agent> "<reason>"`` (399: miscellaneous warning).

        The reason is made safe for a quoted-string: control characters become spaces and
        backslashes and quotes are escaped.
        """
        text = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in self.reason)
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'{code} {agent} "{text}"'


class MultipartError(SiprecError):
    """A body we cannot split into SDP and metadata (400; 415 for a body type we don't take)."""


class MetadataError(SiprecError):
    """rs-metadata (RFC 7865) we cannot use: not XML, unsafe XML, too big, bad ids or times."""


class AnswerError(SiprecError):
    """An offer we can answer with no recordable stream at all (488 Not Acceptable Here)."""

    default_status = 488
