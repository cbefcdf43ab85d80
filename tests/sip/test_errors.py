"""The SIP error types."""

from __future__ import annotations

from sipscribe.sip.errors import SipParseError, SipStateError


def test_parse_error_carries_status_and_reason() -> None:
    error = SipParseError("Via is not valid")
    assert isinstance(error, ValueError)
    assert (error.status, error.reason, str(error)) == (400, "Via is not valid", "Via is not valid")
    assert repr(SipParseError("too big", status=413)) == "SipParseError('too big', status=413)"


def test_state_error_is_not_a_parse_error() -> None:
    assert not issubclass(SipStateError, ValueError)
    assert issubclass(SipStateError, RuntimeError)
