"""SIPREC errors carry the response we owe and a Warning header that names the fault."""

from __future__ import annotations

import pytest

from sipscribe.siprec.errors import AnswerError, MetadataError, MultipartError, SiprecError


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MultipartError("x"), 400),
        (MultipartError("x", status=415), 415),
        (MetadataError("x"), 400),
        (AnswerError("x"), 488),
        (AnswerError("x", status=503), 503),
    ],
)
def test_status(error: SiprecError, status: int) -> None:
    assert error.status == status
    assert isinstance(error, ValueError)
    assert error.reason == "x"


def test_warning_header_quotes_and_strips_controls() -> None:
    error = MetadataError('metadata participant "p\\1"\r\nhas\tno id')
    assert error.warning_header("srs.example.com") == (
        '399 srs.example.com "metadata participant \\"p\\\\1\\"  has no id"'
    )
    assert error.warning_header("10.0.0.1:5060", code=306).startswith('306 10.0.0.1:5060 "')
