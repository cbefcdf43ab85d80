from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.delivery.vcon import (
    VCON_VERSION,
    Analysis,
    Attachment,
    Dialog,
    Party,
    Vcon,
    VconError,
    content_hash,
    schema,
    validate_vcon,
    vcon_uuid,
)

ROOT = Path(__file__).resolve().parents[2]
T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_repository_schema_and_packaged_schema_are_the_same() -> None:
    repo = json.loads((ROOT / "schemas" / "vcon.schema.json").read_text())
    assert repo == schema()
    assert schema()["properties"]["vcon"]["const"] == VCON_VERSION


def test_content_hash_is_sha512_base64url() -> None:
    digest = hashlib.sha512(b"audio").digest()
    expected = "sha512-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert content_hash(b"audio") == expected


@settings(max_examples=200)
@given(at_ms=st.integers(0, 2**48 - 1), key=st.text(max_size=40))
def test_uuid8_layout(at_ms: int, key: str) -> None:
    value = uuid.UUID(vcon_uuid(fqhn="rec.example.com", key=key, at_ms=at_ms))
    assert value.version == 8
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == at_ms
    assert vcon_uuid(fqhn="rec.example.com", key=key, at_ms=at_ms) == str(value)


def test_uuid8_differs_per_key() -> None:
    a = vcon_uuid(fqhn="h", key="call-1", at_ms=1)
    b = vcon_uuid(fqhn="h", key="call-2", at_ms=1)
    assert a != b


def minimal(**kwargs) -> Vcon:
    return Vcon(uuid=vcon_uuid(fqhn="h", key="k", at_ms=0), created_at=T, **kwargs)


def test_minimal_vcon_validates_and_drops_empty_arrays() -> None:
    doc = minimal().to_json()
    assert doc == {"vcon": "0.4.0", "uuid": doc["uuid"], "created_at": "2026-05-01T12:00:00Z"}


def test_references_must_exist() -> None:
    with pytest.raises(ValueError, match=r"dialog\[0\]\.parties names party 1, but the vCon has 1"):
        minimal(parties=[Party(tel="+1")], dialog=[Dialog(type="recording", parties=[0, 1])])
    with pytest.raises(
        ValueError, match=r"analysis\[0\]\.dialog names dialog 0, but the vCon has 0"
    ):
        minimal(analysis=[Analysis(type="transcript", vendor="v", dialog=0)])
    with pytest.raises(ValueError, match=r"attachments\[0\]\.party names party 0"):
        minimal(attachments=[Attachment(start=T, party=0, dialog=0)])


def full_doc() -> dict:
    return minimal(
        parties=[Party(tel="+15551230000", role="customer"), Party(name="Agent", role="agent")],
        dialog=[
            Dialog(
                type="recording",
                start=T,
                duration=12.5,
                parties=[1, 0],
                originator=0,
                mediatype="audio/x-wav",
                url="https://rec.example.com/c1.wav",
                content_hash=content_hash(b"x"),
            )
        ],
        analysis=[
            Analysis(
                type="transcript",
                dialog=0,
                vendor="sipscribe",
                mediatype="application/json",
                encoding="json",
                body={"utterances": []},
            )
        ],
        attachments=[
            Attachment(
                purpose="meta",
                start=T,
                party=0,
                dialog=0,
                mediatype="application/json",
                encoding="json",
                body={"a": 1},
            )
        ],
    ).to_json()


def test_full_document_validates() -> None:
    doc = full_doc()
    validate_vcon(doc)
    assert doc["dialog"][0]["parties"] == [1, 0]
    assert doc["analysis"][0]["body"] == {"utterances": []}


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("uuid"), "(top level)"),
        (lambda d: d.update(created_at="yesterday"), "created_at"),
        (lambda d: d.update(vcon="0.0.1"), "vcon"),
        (lambda d: d["dialog"][0].update(type="video"), "dialog/0/type"),
        (lambda d: d["dialog"][0].update(url="http://insecure.example/x"), "dialog/0/url"),
        (lambda d: d["dialog"][0].pop("content_hash"), "dialog/0"),
        (lambda d: d["dialog"][0].update(body="AAAA", encoding="base64url"), "dialog/0"),
        (lambda d: d["analysis"][0].pop("vendor"), "analysis/0"),
        (
            lambda d: d["analysis"][0].update(encoding="base64url", body="not base64!"),
            "analysis/0/body",
        ),
        (lambda d: d["attachments"][0].pop("start"), "attachments/0"),
        (lambda d: d["dialog"][0].update(type="incomplete"), "dialog/0"),
        (lambda d: d.update(redacted={"type": "pii"}, amended={"uuid": d["uuid"]}), "(top level)"),
    ],
)
def test_schema_rejects(mutate, where: str) -> None:
    doc = full_doc()
    mutate(doc)
    with pytest.raises(VconError) as info:
        validate_vcon(doc)
    assert str(info.value).startswith(f"vCon does not match the schema at {where}: ")
    assert len(str(info.value)) < 300
