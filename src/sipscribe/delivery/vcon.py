"""vCon (draft-ietf-vcon-vcon-core, syntax 0.4.0): a typed model and its JSON Schema check.

The pydantic classes are the shape we emit: parties, one recording dialog per call, analysis
entries (transcript, summary) and attachments (call metadata). ``Vcon.to_json`` drops absent
parameters (the draft allows leaving out objects with no value) and checks the cross-references
JSON Schema cannot express (every party, dialog and attachment index points at something).
``validate_vcon`` checks a document against ``vcon.schema.json``, the schema this repository
keeps in ``schemas/`` and ships inside this package; every vCon we send passes through it.

Parties carry ``role`` ("agent"/"customer"), an extension parameter (section 2.5), listed in
``extensions`` under the name ``sipscribe`` along with the other sipscribe additions.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import uuid as uuidlib
from datetime import datetime
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

VCON_VERSION = "0.4.0"
MEDIA_TYPE = "application/vcon+json"
EXTENSION = "sipscribe"

Encoding = Literal["base64url", "json", "none"]


class VconError(ValueError):
    """A vCon that does not match the schema or points at parties or dialogs it lacks."""


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2), as the draft's inline bodies use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def content_hash(data: bytes) -> str:
    """The draft's ContentHash token for ``data``: ``sha512-<base64url digest>``."""
    return "sha512-" + b64url(hashlib.sha512(data).digest())


def vcon_uuid(*, fqhn: str, key: str, at_ms: int) -> str:
    """A version 8 UUID laid out like version 7 (48-bit Unix ms, then hash bits), as the draft
    recommends (4.1.2). The hash covers the host name *and* ``key`` (our call id), so the same
    call always gets the same uuid (a redelivered bundle is recognisably the same vCon) while
    two calls starting in the same millisecond still differ."""
    digest = hashlib.sha1(f"{fqhn}\0{key}".encode()).digest()
    rand_a = int.from_bytes(digest[:2], "big") & 0x0FFF
    rand_b = int.from_bytes(digest[2:10], "big") & (2**62 - 1)
    value = (at_ms & (2**48 - 1)) << 80  # unix_ts_ms
    value |= 0x8 << 76  # version 8
    value |= rand_a << 64
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand_b
    return str(uuidlib.UUID(int=value))


class _Object(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _Content(_Object):
    """Inline (``body`` + ``encoding``) or referenced (``url`` + ``content_hash``) content."""

    body: Any = None
    encoding: Encoding | None = None
    url: str | None = None
    content_hash: str | list[str] | None = None


class Party(_Object):
    tel: str | None = None
    sip: str | None = None
    mailto: str | None = None
    name: str | None = None
    uuid: str | None = None
    #: Extension parameter: "agent" or "customer".
    role: str | None = None


class Dialog(_Content):
    type: Literal["recording", "text", "recording-set", "transfer", "incomplete"]
    start: datetime | None = None
    duration: float | None = Field(default=None, ge=0)
    parties: int | list[int | list[int] | None] | None = None
    originator: int | None = None
    mediatype: str | None = None
    filename: str | None = None
    application: str | None = None
    disposition: str | None = None


class Analysis(_Content):
    type: str
    dialog: int | list[int] | None = None
    mediatype: str | None = None
    vendor: str
    product: str | None = None
    schema_: str | None = Field(default=None, alias="schema")


class Attachment(_Content):
    purpose: str | None = None
    start: datetime
    party: int
    dialog: int
    mediatype: str | None = None
    filename: str | None = None


class Vcon(_Object):
    vcon: Literal["0.4.0"] = VCON_VERSION
    uuid: str
    created_at: datetime
    updated_at: datetime | None = None
    subject: str | None = None
    extensions: list[str] | None = None
    parties: list[Party] = Field(default_factory=list)
    dialog: list[Dialog] = Field(default_factory=list)
    analysis: list[Analysis] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Vcon:
        parties, dialogs = len(self.parties), len(self.dialog)

        def party(i: int, where: str) -> None:
            if not 0 <= i < parties:
                raise ValueError(f"{where} names party {i}, but the vCon has {parties}")

        def dialog(i: int, where: str) -> None:
            if not 0 <= i < dialogs:
                raise ValueError(f"{where} names dialog {i}, but the vCon has {dialogs}")

        for n, d in enumerate(self.dialog):
            for entry in _flatten(d.parties):
                party(entry, f"dialog[{n}].parties")
            if d.originator is not None:
                party(d.originator, f"dialog[{n}].originator")
        for n, a in enumerate(self.analysis):
            for entry in _flatten(a.dialog):
                dialog(entry, f"analysis[{n}].dialog")
        for n, att in enumerate(self.attachments):
            party(att.party, f"attachments[{n}].party")
            dialog(att.dialog, f"attachments[{n}].dialog")
        return self

    def to_json(self) -> dict[str, Any]:
        """The unsigned JSON form, absent parameters left out, checked against the schema."""
        doc = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for key in ("parties", "dialog", "analysis", "attachments"):
            if not doc.get(key):
                doc.pop(key, None)
        validate_vcon(doc)
        return doc


def _flatten(value: int | list[Any] | None) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    out: list[int] = []
    for item in value:
        out.extend(_flatten(item))
    return out


@functools.cache
def schema() -> dict[str, Any]:
    """The vCon JSON Schema shipped in this package."""
    text = resources.files("sipscribe.delivery").joinpath("vcon.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@functools.cache
def _validator() -> Any:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema())


def validate_vcon(doc: dict[str, Any]) -> None:
    """``VconError`` naming the first problem if ``doc`` does not match the schema."""
    import jsonschema

    errors = list(_validator().iter_errors(doc))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    message = error.message
    if len(message) > 200:  # jsonschema quotes the whole instance: keep transcripts out of logs
        rule = json.dumps(error.validator_value, separators=(",", ":"))[:160]
        message = f"fails {error.validator!r} {rule}"
    raise VconError(f"vCon does not match the schema at {where}: {message}")
