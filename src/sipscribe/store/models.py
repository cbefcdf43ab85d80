"""Typed SQLAlchemy 2 models, one ``…Record`` class per table.

These are storage shapes, not API shapes: ``sipscribe.api.schemas`` maps them to what clients see,
as the FastAPI template keeps ``User`` apart from ``UserPublic``. Every table that holds tenant data
reaches its tenant either directly (``tenant_id``) or through its call, so every lookup by id can
be scoped to a tenant.

Enumerated columns are plain strings checked by named CHECK constraints rather than database enum
types: adding a value later is then a one-line migration on both SQLite and PostgreSQL.

The Alembic migrations in ``migrations/versions`` must describe exactly these tables; a test runs
autogenerate against a migrated database and asserts that the diff is empty.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Constraint names must be deterministic so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid; PostgreSQL gets BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``; SQLite has no timezone support, so values are stored as
    naive UTC and made aware again on the way out. Naive datetimes are refused on the way in,
    because guessing their zone silently corrupts time-range queries.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value.isoformat()} has no timezone")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The wall clock, aware and in UTC: the only clock the store uses for its own defaults."""
    return datetime.now(UTC)


class CallSource(enum.StrEnum):
    """How a call reached us."""

    SIPREC = "siprec"
    UPLOAD = "upload"
    DIAL_OUT = "dial-out"


class CallDirection(enum.StrEnum):
    """Direction of the recorded call as seen from the tenant's side."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallState(enum.StrEnum):
    """Lifecycle of a call: live while media flows, then completed or failed."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


class TranscriptionState(enum.StrEnum):
    """Where a call's transcription stands; the names are the ones hosted APIs expose."""

    SENT_TO_RECOGNITION = "speech_sent_to_recognition"
    RECOGNIZED = "speech_recognized"
    RECOGNITION_FAILED = "speech_recognition_failed"
    STORED = "speech_stored"
    STORING_FAILED = "speech_storing_failed"


class SummaryState(enum.StrEnum):
    """A summary job: created (queued or running), then processed or failed."""

    CREATED = "created"
    PROCESSED = "processed"
    FAILED = "failed"


class DeliveryState(enum.StrEnum):
    """An outbox entry: pending until delivered or given up on."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Role(enum.StrEnum):
    """Which side of the conversation a party, stream or utterance belongs to."""

    AGENT = "agent"
    CUSTOMER = "customer"


def _in(column: str, values: type[enum.StrEnum], *, nullable: bool = False) -> str:
    listed = ", ".join(f"'{v.value}'" for v in values)
    check = f"{column} IN ({listed})"
    return f"{column} IS NULL OR {check}" if nullable else check


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        list[str]: JSON(),
    }


class TenantRecord(Base):
    """An isolated customer of this server; every other row belongs to exactly one."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # rate_limit_per_minute, auto_start, summary.base_instructions: see store.tenants.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRecord(Base):
    """An API key. Only the SHA-256 of the secret is kept; ``prefix`` narrows the lookup."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    tenant: Mapped[TenantRecord] = relationship(lazy="joined")


class CallRecord(Base):
    """One recorded or uploaded call."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_in("source", CallSource), name="source"),
        CheckConstraint(_in("direction", CallDirection, nullable=True), name="direction"),
        CheckConstraint(_in("state", CallState), name="state"),
        CheckConstraint(
            _in("transcription_state", TranscriptionState, nullable=True),
            name="transcription_state",
        ),
        # Cursor pagination walks (started_at, id) downwards within one tenant.
        Index("ix_calls_tenant_started", "tenant_id", "started_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    source: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    sip_call_id: Mapped[str | None] = mapped_column(String(255), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    duration_sec: Mapped[float | None] = mapped_column(Float)
    # Vendor dialect identifiers (e.g. {"ucid": …, "xrefci": …}) from the SIPREC metadata.
    vendor_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # One entry per stream: {"label", "role", "evidence"}; why each side was called agent/customer.
    role_decisions: Mapped[list[Any]] = mapped_column(default=list)
    recording_path: Mapped[str | None] = mapped_column(String(1024))
    transcription_state: Mapped[str | None] = mapped_column(String(32))
    transcription_error: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    participants: Mapped[list[ParticipantRecord]] = relationship(
        back_populates="call",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ParticipantRecord.id",
        lazy="selectin",
    )


class ParticipantRecord(Base):
    """A party to a call as SIPREC metadata (or the uploader) described it."""

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("call_id", "participant_id"),
        CheckConstraint(_in("role", Role, nullable=True), name="role"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[str] = mapped_column(String(255))
    aor: Mapped[str | None] = mapped_column(String(512))
    name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(16))

    call: Mapped[CallRecord] = relationship(back_populates="participants")


class StreamRecord(Base):
    """One media stream (SDP m-line) of a call and what we learned about it."""

    __tablename__ = "streams"
    __table_args__ = (
        UniqueConstraint("call_id", "stream_id"),
        CheckConstraint(_in("role", Role, nullable=True), name="role"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    stream_id: Mapped[str] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[int] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(16))
    codec: Mapped[str | None] = mapped_column(String(64))
    # Receiver statistics: packets, lost, jitter, …, as the media layer reports them.
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class UtteranceRecord(Base):
    """One recognised utterance; ``sequence`` orders a call's utterances as they were stored."""

    __tablename__ = "utterances"
    __table_args__ = (
        UniqueConstraint("call_id", "sequence"),
        CheckConstraint(_in("role", Role, nullable=True), name="role"),
        CheckConstraint("end_ms >= start_ms", name="span"),
        Index("ix_utterances_call_start", "call_id", "start_ms"),
        # Batch export walks (created_at, id) across calls (migration 0002).
        Index("ix_utterances_created", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    stream_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[int] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    redacted_text: Mapped[str | None] = mapped_column(Text)
    words: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    confidence: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recognised_at: Mapped[datetime | None]
    #: The named speaker of a mixed stream (dial-out speaker events), {"id","name","email"}.
    speaker: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))


class DtmfEventRecord(Base):
    """A telephone-event (RFC 4733) digit seen on a stream."""

    __tablename__ = "dtmf_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    stream_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[int | None] = mapped_column(Integer)
    digit: Mapped[str] = mapped_column(String(1))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SummaryRecord(Base):
    """The summary job of a call (at most one per call; re-running replaces it)."""

    __tablename__ = "summaries"
    __table_args__ = (CheckConstraint(_in("state", SummaryState), name="state"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    instructions: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    processed_at: Mapped[datetime | None]


class SettingRecord(Base):
    """An instance-wide setting (not per tenant), e.g. the first-admin-key bootstrap marker."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookTargetRecord(Base):
    """Where a tenant wants events delivered.

    ``secret`` signs payloads (HMAC), so unlike API key secrets it must be stored as is.
    An empty ``events`` list subscribes to every event type.
    """

    __tablename__ = "webhook_targets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(255))
    events: Mapped[list[str]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Delivery options (format, realtime policy, timeout, auth, TLS): ``delivery.targets``
    # validates them; secrets inside are never shown by the API (migration 0002).
    options: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class DeliveryRecord(Base):
    """An outbox entry: one event for one target, retried until delivered or given up."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("target_id", "idempotency_key"),
        CheckConstraint(_in("state", DeliveryState), name="state"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_targets.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column()
    idempotency_key: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    # The call the event belongs to: deliveries of one call to one target keep their order.
    call_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # Retried until then, after which the entry fails (dead letter); None: no limit.
    expires_at: Mapped[datetime | None]
