"""What a webhook target asks for: events, payload format, realtime policy, auth and TLS.

``TargetOptions`` validates ``WebhookTargetRecord.options`` (the API writes it, the delivery
service reads it); ``TargetSpec`` is the frozen snapshot of a whole target the sending code
works from. Secrets (the signing secret, a header or query secret, an OAuth2 client secret, a
client key) are stored as given, because we must send or use them, and are never shown back:
``masked_options`` replaces each with ``MASK``, and a PATCH that sends ``MASK`` back keeps the
stored value (``merge_secrets``).
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import certifi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sipscribe.delivery.errors import TargetConfigError

EVENT_TYPES = ("transcript", "call.started", "call.ended", "summary.ready", "bundle", "dtmf")
#: Events sent as they happen; the rest always go through the durable outbox.
REALTIME_EVENTS = frozenset({"transcript", "call.started", "call.ended", "dtmf"})
MASK = "********"

# RFC 9110 field-name (token); we also refuse the headers we set ourselves.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "content-length",
        "content-type",
        "host",
        "idempotency-key",
        "transfer-encoding",
        "user-agent",
        "x-sipscribe-delivery",
        "x-sipscribe-event",
        "x-sipscribe-signature",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeaderSecretAuth(_Strict):
    """A shared secret sent in a header the receiver chose (e.g. ``X-Api-Key``)."""

    type: Literal["header"]
    header: str = Field(min_length=1, max_length=100)
    value: str = Field(min_length=1, max_length=4096)

    @field_validator("header")
    @classmethod
    def _header_name(cls, v: str) -> str:
        if not _TOKEN.match(v):
            raise ValueError(f"header name {v!r} is not a valid HTTP field name")
        if v.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {v!r} is set by sipscribe itself")
        return v


class QuerySecretAuth(_Strict):
    """A shared secret sent as a URL query parameter (for receivers that cannot read headers)."""

    type: Literal["query"]
    param: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._~-]+$")
    value: str = Field(min_length=1, max_length=4096)


class OAuth2Auth(_Strict):
    """OAuth2 client credentials (RFC 6749 §4.4): a bearer token fetched from ``token_url``,
    cached until it expires and fetched again when the receiver answers 401."""

    type: Literal["oauth2"]
    token_url: str = Field(min_length=1, max_length=2048)
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: str = Field(min_length=1, max_length=4096)
    scope: str | None = Field(default=None, max_length=1024)
    audience: str | None = Field(default=None, max_length=1024)
    #: "basic": HTTP Basic (RFC 6749 §2.3.1, the default); "body": in the form body.
    client_auth: Literal["basic", "body"] = "basic"

    @field_validator("token_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_url(v, what="OAuth2 token URL")


TargetAuth = Annotated[HeaderSecretAuth | QuerySecretAuth | OAuth2Auth, Field(discriminator="type")]


class TlsOptions(_Strict):
    """Extra trust (``ca_pem``, added to the public CAs) and a client certificate for mutual
    TLS (``client_cert_pem`` with ``client_key_pem``)."""

    ca_pem: str | None = Field(default=None, max_length=200_000)
    client_cert_pem: str | None = Field(default=None, max_length=200_000)
    client_key_pem: str | None = Field(default=None, max_length=200_000)
    client_key_password: str | None = Field(default=None, max_length=1024)


class RealtimeOptions(_Strict):
    """What to do when a real-time POST (utterance, call and DTMF events) fails.

    ``drop_oldest``: one attempt each; a queue over ``max_queue`` drops its oldest entries;
    failures and drops are counted. ``at_least_once``: kept in the database outbox and retried
    with backoff until delivered or ``max_age_s`` old, in order within a call.
    """

    policy: Literal["drop_oldest", "at_least_once"] = "drop_oldest"
    max_age_s: float = Field(default=300.0, gt=0, le=7 * 86400)
    max_queue: int = Field(default=1000, ge=1, le=100_000)


class TargetOptions(_Strict):
    """Everything about a target besides URL, signing secret, events and enabled."""

    format: Literal["json", "vcon"] = "json"
    realtime: RealtimeOptions = RealtimeOptions()
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    max_in_flight: int = Field(default=4, ge=1, le=64)
    #: How long a completion bundle (and summary.ready) is retried before it is dead-lettered.
    bundle_max_age_s: float = Field(default=86400.0, gt=0, le=30 * 86400)
    auth: TargetAuth | None = None
    tls: TlsOptions | None = None


def check_url(url: str, *, what: str = "webhook URL") -> str:
    """An absolute http(s) URL without credentials or fragment, else ``ValueError``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{what} {url!r} is not valid: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r} is not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} must not contain credentials; use the auth settings")
    if parts.fragment:
        raise ValueError(f"{what} {url!r} has a fragment")
    if port == 0:
        raise ValueError(f"{what} {url!r} has port 0")
    return url


def parse_options(raw: dict[str, Any] | None) -> TargetOptions:
    """Validate stored or submitted options; ``TargetConfigError`` naming the bad field."""
    try:
        options = TargetOptions.model_validate(raw or {})
    except ValidationError as exc:
        raise TargetConfigError(describe(exc)) from None
    if options.tls is not None:
        build_ssl_context(options.tls)  # PEMs that do not load are refused now, not at 3 am
    return options


def describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def build_ssl_context(tls: TlsOptions | None) -> ssl.SSLContext:
    """Public CAs plus the target's CA bundle, and its client certificate if it has one."""
    context = ssl.create_default_context(cafile=certifi.where())
    if tls is None:
        return context
    if tls.ca_pem:
        try:
            context.load_verify_locations(cadata=tls.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise TargetConfigError(f"tls.ca_pem is not a PEM CA bundle: {exc}") from None
    if bool(tls.client_cert_pem) != bool(tls.client_key_pem):
        raise TargetConfigError("tls needs both client_cert_pem and client_key_pem, or neither")
    if tls.client_cert_pem and tls.client_key_pem:
        # The ssl module loads certificates from files only: a private directory, gone at once.
        with tempfile.TemporaryDirectory(prefix="sipscribe-mtls-") as tmp:
            cert = Path(tmp) / "cert.pem"
            key = Path(tmp) / "key.pem"
            cert.write_text(tls.client_cert_pem)
            key.touch(mode=0o600)
            key.write_text(tls.client_key_pem)
            try:
                context.load_cert_chain(cert, key, password=tls.client_key_password)
            except (ssl.SSLError, ValueError) as exc:
                raise TargetConfigError(
                    f"tls client certificate and key do not load: {exc}"
                ) from None
    return context


def masked_options(options: TargetOptions) -> dict[str, Any]:
    """The options as the API shows them: every secret replaced by ``MASK``."""
    out = options.model_dump(mode="json")
    auth = out.get("auth")
    if isinstance(auth, dict):
        for name in ("value", "client_secret"):
            if auth.get(name):
                auth[name] = MASK
    tls = out.get("tls")
    if isinstance(tls, dict):
        for name in ("client_key_pem", "client_key_password"):
            if tls.get(name):
                tls[name] = MASK
    return out


def merge_secrets(new: dict[str, Any], old: TargetOptions) -> dict[str, Any]:
    """``new`` options (as submitted) with every ``MASK`` replaced by the stored secret, so a
    client can send back what it read; a ``MASK`` with nothing stored behind it stays and fails
    validation."""
    merged = json.loads(json.dumps(new))
    old_json = old.model_dump(mode="json")
    for section, names in (
        ("auth", ("value", "client_secret")),
        ("tls", ("client_key_pem", "client_key_password")),
    ):
        submitted = merged.get(section)
        stored = old_json.get(section)
        if not isinstance(submitted, dict):
            continue
        same_kind = isinstance(stored, dict) and (
            section == "tls" or stored.get("type") == submitted.get("type")
        )
        for name in names:
            if submitted.get(name) == MASK:
                if same_kind and isinstance(stored, dict) and stored.get(name):
                    submitted[name] = stored[name]
                else:
                    raise TargetConfigError(f"{section}.{name}: masked value with no stored secret")
    return merged


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A webhook target as the sending code sees it, plus the tenant's private-address rule."""

    id: str
    tenant_id: str
    url: str
    secret: str
    events: tuple[str, ...]
    enabled: bool
    options: TargetOptions
    allow_private: bool

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.events or event_type in self.events)

    @property
    def persistent_realtime(self) -> bool:
        return self.options.realtime.policy == "at_least_once"

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything the HTTP client is built from changes."""
        blob = json.dumps(
            [self.url, self.secret, self.options.model_dump(mode="json"), self.allow_private],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    @classmethod
    def of(cls, record: Any, *, allow_private: bool) -> TargetSpec:
        """From a ``WebhookTargetRecord``; stored options that no longer validate raise
        ``TargetConfigError``."""
        return cls(
            id=record.id,
            tenant_id=record.tenant_id,
            url=record.url,
            secret=record.secret,
            events=tuple(record.events or ()),
            enabled=bool(record.enabled),
            options=parse_options(record.options),
            allow_private=allow_private,
        )


def allows_private(tenant_settings: dict[str, Any] | None) -> bool:
    """The tenant setting ``allow_private_webhooks`` (off unless exactly true)."""
    if not isinstance(tenant_settings, dict):
        return False
    return tenant_settings.get("allow_private_webhooks") is True
