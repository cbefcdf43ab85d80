"""API keys: scopes, creation, authentication, revocation.

A secret looks like ``ssk_`` followed by 43 URL-safe characters (32 random bytes). It is shown
once, when created; the database keeps only its SHA-256 hex digest and its first eight random
characters (``prefix``) to find the candidate row without scanning. A plain hash is enough (no
salt, no slow KDF) because the secret is 256 random bits, not a password a person chose.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sipscribe.store.kv import add_setting, get_setting, set_setting
from sipscribe.store.models import ApiKeyRecord, TenantRecord, utcnow
from sipscribe.store.tenants import DEFAULT_TENANT_NAME, get_or_create_tenant

SECRET_PREFIX = "ssk_"
SECRET_RANDOM_BYTES = 32
PREFIX_LENGTH = 8
MAX_KEY_NAME_LENGTH = 200
# last_used_at is a hint for operators, not an audit log: write it at most this often per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)
BOOTSTRAP_SETTING = "bootstrap.first_admin_key"


class Scope(enum.StrEnum):
    """What a key may do. ``admin`` implies every other scope."""

    CALLS_READ = "calls.read"
    CALLS_WRITE = "calls.write"
    TRANSCRIPTION_READ = "calls.transcription.read"
    TRANSCRIPTION_WRITE = "calls.transcription.write"
    TRANSCRIPTION_READ_UNREDACTED = "calls.transcription.read_unredacted"
    SUMMARY_READ = "calls.summary.read"
    SUMMARY_WRITE = "calls.summary.write"
    LLM_USE = "llm.use"
    SETTINGS_READ = "settings.read"
    SETTINGS_WRITE = "settings.write"
    STREAMING_WRITE = "streaming.write"
    CONNECT = "connect.write"
    WEBHOOKS_READ = "webhooks.read"
    WEBHOOKS_WRITE = "webhooks.write"
    ADMIN = "admin"


class ScopeError(ValueError):
    """A scope name that is not one of ``Scope``."""


class ApiKeyError(ValueError):
    """An API key request we cannot fulfil (empty name, no scopes)."""


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Validate scope names (comma-separated items are split too), keeping order, no repeats."""
    scopes: list[Scope] = []
    for value in values:
        for item in value.split(","):
            name = item.strip()
            if not name:
                continue
            try:
                scope = Scope(name)
            except ValueError:
                known = ", ".join(s.value for s in Scope)
                raise ScopeError(f"unknown scope {name!r}; known scopes: {known}") from None
            if scope not in scopes:
                scopes.append(scope)
    return scopes


def has_scope(granted: Iterable[str], required: Scope) -> bool:
    """True when ``granted`` includes ``required`` or ``admin``."""
    granted_set = set(granted)
    return Scope.ADMIN.value in granted_set or required.value in granted_set


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_prefix(secret: str) -> str | None:
    """The lookup prefix of a well-formed secret, or None for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    random_part = secret[len(SECRET_PREFIX) :]
    if len(random_part) < PREFIX_LENGTH:
        return None
    return random_part[:PREFIX_LENGTH]


def display_prefix(key: ApiKeyRecord) -> str:
    """How a key is shown to operators: enough to recognise it, useless to an attacker."""
    return f"{SECRET_PREFIX}{key.prefix}…"


async def create_key(
    session: AsyncSession, *, tenant_name: str, scopes: Iterable[str], name: str
) -> tuple[ApiKeyRecord, str]:
    """Create a key for the tenant called ``tenant_name`` (created if missing) and commit.

    Returns the record and the secret; the secret is not stored and cannot be shown again.
    """
    parsed = parse_scopes(scopes)
    if not parsed:
        raise ApiKeyError("an API key needs at least one scope")
    name = name.strip()
    if not name:
        raise ApiKeyError("API key name is empty")
    if len(name) > MAX_KEY_NAME_LENGTH:
        raise ApiKeyError(f"API key name is longer than {MAX_KEY_NAME_LENGTH} characters")
    tenant = await get_or_create_tenant(session, name=tenant_name)
    secret = generate_secret()
    prefix = secret_prefix(secret)
    assert prefix is not None
    key = ApiKeyRecord(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=[s.value for s in parsed],
    )
    session.add(key)
    await session.commit()
    await session.refresh(key, ["tenant"])
    return key, secret


async def authenticate(
    session: AsyncSession, *, secret: str, now: datetime | None = None
) -> ApiKeyRecord | None:
    """The active key whose secret this is, or None (unknown, malformed or revoked).

    Records use (``last_used_at``) at most once per ``LAST_USED_RESOLUTION``, committing it.
    """
    prefix = secret_prefix(secret)
    if prefix is None:
        return None
    digest = hash_secret(secret)
    result = await session.execute(
        select(ApiKeyRecord).where(ApiKeyRecord.prefix == prefix, ApiKeyRecord.revoked_at.is_(None))
    )
    for key in result.scalars():
        if hmac.compare_digest(key.secret_hash, digest):
            now = now or utcnow()
            if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
                await session.execute(
                    update(ApiKeyRecord).where(ApiKeyRecord.id == key.id).values(last_used_at=now)
                )
                await session.commit()
                key.last_used_at = now
            return key
    return None


async def get_key(
    session: AsyncSession, *, key_id: str, tenant_id: str | None
) -> ApiKeyRecord | None:
    """A key by id within ``tenant_id``; ``tenant_id=None`` is the operator's view of all."""
    query = select(ApiKeyRecord).where(ApiKeyRecord.id == key_id)
    if tenant_id is not None:
        query = query.where(ApiKeyRecord.tenant_id == tenant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_keys(
    session: AsyncSession, *, tenant_id: str | None, include_revoked: bool = True
) -> list[ApiKeyRecord]:
    """Keys, oldest first; ``tenant_id=None`` lists every tenant's (operator CLI)."""
    query = select(ApiKeyRecord).join(TenantRecord)
    if tenant_id is not None:
        query = query.where(ApiKeyRecord.tenant_id == tenant_id)
    if not include_revoked:
        query = query.where(ApiKeyRecord.revoked_at.is_(None))
    query = query.order_by(TenantRecord.name, ApiKeyRecord.created_at, ApiKeyRecord.id)
    return list((await session.execute(query)).scalars())


async def revoke_key(
    session: AsyncSession, *, key_id: str, tenant_id: str | None, now: datetime | None = None
) -> ApiKeyRecord | None:
    """Revoke a key and commit; revoking twice keeps the first time. None if no such key."""
    key = await get_key(session, key_id=key_id, tenant_id=tenant_id)
    if key is None:
        return None
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        await session.commit()
    return key


async def bootstrap_admin_key(session: AsyncSession) -> tuple[ApiKeyRecord, str] | None:
    """On a database that has never had a key, create tenant "default" and an admin key.

    Returns the record and its secret the one time it creates them, None ever after: a marker in
    the settings table remembers that the bootstrap happened, so revoking every key later does
    not make a new admin key appear at the next start.
    """
    if await get_setting(session, key=BOOTSTRAP_SETTING) is not None:
        return None
    keys_exist = (await session.execute(select(ApiKeyRecord.id).limit(1))).first() is not None
    # Claim the bootstrap first: of two processes starting at once, only one inserts the marker.
    try:
        await add_setting(session, key=BOOTSTRAP_SETTING, value={"state": "claimed"})
    except IntegrityError:
        await session.rollback()
        return None
    if keys_exist:
        await set_setting(session, key=BOOTSTRAP_SETTING, value={"state": "skipped, keys existed"})
        return None
    key, secret = await create_key(
        session, tenant_name=DEFAULT_TENANT_NAME, scopes=[Scope.ADMIN], name="bootstrap admin"
    )
    await set_setting(
        session,
        key=BOOTSTRAP_SETTING,
        value={"state": "created", "key_id": key.id, "created_at": key.created_at.isoformat()},
    )
    return key, secret
