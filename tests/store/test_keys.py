"""API keys: scopes, secrets that are never stored, authentication, revocation, bootstrap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sipscribe.store import keys
from sipscribe.store.keys import Scope
from sipscribe.store.models import ApiKeyRecord, Base, utcnow


def test_parse_scopes_splits_dedupes_and_keeps_order() -> None:
    assert keys.parse_scopes(["calls.read,calls.write", " calls.read ", "admin"]) == [
        Scope.CALLS_READ,
        Scope.CALLS_WRITE,
        Scope.ADMIN,
    ]
    assert keys.parse_scopes(["", " , "]) == []


def test_parse_scopes_names_the_unknown_one() -> None:
    with pytest.raises(keys.ScopeError) as info:
        keys.parse_scopes(["calls.read", "calls.delete"])
    assert str(info.value).startswith("unknown scope 'calls.delete'; known scopes: calls.read, ")


@given(st.sets(st.sampled_from(list(Scope))), st.sampled_from(list(Scope)))
@settings(max_examples=300)
def test_has_scope_is_membership_or_admin(granted: set[Scope], required: Scope) -> None:
    expected = required in granted or Scope.ADMIN in granted
    assert keys.has_scope([s.value for s in granted], required) is expected


def test_generated_secrets_have_the_documented_shape() -> None:
    secret = keys.generate_secret()
    assert secret.startswith("ssk_")
    assert len(secret) == 4 + 43
    assert keys.secret_prefix(secret) == secret[4:12]
    assert len(keys.hash_secret(secret)) == 64
    assert keys.generate_secret() != secret


@given(st.text(max_size=60))
@settings(max_examples=300)
def test_secret_prefix_only_for_our_format(value: str) -> None:
    prefix = keys.secret_prefix(value)
    if value.startswith("ssk_") and len(value) >= 12:
        assert prefix == value[4:12]
    else:
        assert prefix is None


async def _dump_everything(session) -> str:
    """Every value in every table, as text."""
    parts = []
    for table in Base.metadata.sorted_tables:
        rows = (await session.execute(text(f'SELECT * FROM "{table.name}"'))).all()
        parts.extend(repr(tuple(row)) for row in rows)
    return "\n".join(parts)


async def test_secret_is_shown_once_and_only_its_hash_is_stored(
    session, database, db_target
) -> None:
    key, secret = await keys.create_key(
        session, tenant_name="acme", scopes=["calls.read"], name="crm"
    )
    assert key.secret_hash == keys.hash_secret(secret)
    assert key.tenant.name == "acme"
    dump = await _dump_everything(session)
    assert key.secret_hash in dump
    assert secret not in dump
    assert secret[4:] not in dump
    if db_target.backend == "sqlite":
        await session.rollback()  # hand the connection back before closing the pool
        await database.dispose()  # checkpoint the WAL into the file
        raw = (db_target.settings.data_dir / "sipscribe.db").read_bytes()
        assert secret.encode() not in raw
        assert secret[4:].encode() not in raw


async def test_authenticate(session) -> None:
    key, secret = await keys.create_key(
        session, tenant_name="acme", scopes=["calls.read", "admin"], name="ops"
    )
    found = await keys.authenticate(session, secret=secret)
    assert found is not None and found.id == key.id
    assert found.scopes == ["calls.read", "admin"]
    assert found.last_used_at is not None
    assert await keys.authenticate(session, secret=secret + "x") is None
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert await keys.authenticate(session, secret=tampered) is None
    assert await keys.authenticate(session, secret="") is None
    assert await keys.authenticate(session, secret="Bearer " + secret) is None
    assert await keys.authenticate(session, secret="ssk_short") is None


async def test_last_used_is_written_at_most_once_a_minute(session) -> None:
    _, secret = await keys.create_key(session, tenant_name="a", scopes=["admin"], name="k")
    first = utcnow()
    await keys.authenticate(session, secret=secret, now=first)
    await keys.authenticate(session, secret=secret, now=first + timedelta(seconds=30))
    session.expunge_all()
    key = await keys.authenticate(session, secret=secret, now=first + timedelta(seconds=59))
    assert key.last_used_at == first
    later = first + timedelta(seconds=61)
    await keys.authenticate(session, secret=secret, now=later)
    session.expunge_all()
    assert (await session.get(ApiKeyRecord, key.id)).last_used_at == later


async def test_revoke(session) -> None:
    key, secret = await keys.create_key(session, tenant_name="acme", scopes=["admin"], name="k")
    other, _ = await keys.create_key(session, tenant_name="other", scopes=["admin"], name="k")
    assert await keys.revoke_key(session, key_id=key.id, tenant_id=other.tenant_id) is None
    assert await keys.authenticate(session, secret=secret) is not None
    revoked = await keys.revoke_key(session, key_id=key.id, tenant_id=key.tenant_id)
    assert revoked is not None and revoked.revoked_at is not None
    first_time = revoked.revoked_at
    again = await keys.revoke_key(session, key_id=key.id, tenant_id=None)
    assert again.revoked_at == first_time
    assert await keys.authenticate(session, secret=secret) is None
    assert await keys.revoke_key(session, key_id="nope", tenant_id=None) is None


async def test_list_keys(session) -> None:
    a, _ = await keys.create_key(session, tenant_name="b-tenant", scopes=["admin"], name="one")
    b, _ = await keys.create_key(session, tenant_name="a-tenant", scopes=["admin"], name="two")
    c, _ = await keys.create_key(session, tenant_name="a-tenant", scopes=["admin"], name="three")
    await keys.revoke_key(session, key_id=c.id, tenant_id=None)
    assert [k.id for k in await keys.list_keys(session, tenant_id=None)] == [b.id, c.id, a.id]
    assert [k.id for k in await keys.list_keys(session, tenant_id=b.tenant_id)] == [b.id, c.id]
    active = await keys.list_keys(session, tenant_id=b.tenant_id, include_revoked=False)
    assert [k.id for k in active] == [b.id]


@pytest.mark.parametrize(
    ("scopes", "name", "error", "message"),
    [
        ([], "k", keys.ApiKeyError, "an API key needs at least one scope"),
        (["calls.read"], "  ", keys.ApiKeyError, "API key name is empty"),
        (["calls.read"], "n" * 201, keys.ApiKeyError, "API key name is longer than 200 characters"),
        (["nope"], "k", keys.ScopeError, None),
    ],
)
async def test_create_key_rejects(
    session,
    scopes: list[str],
    name: str,
    error: type[Exception],
    message: str | None,
) -> None:
    with pytest.raises(error) as info:
        await keys.create_key(session, tenant_name="acme", scopes=scopes, name=name)
    if message is not None:
        assert str(info.value) == message


async def test_bootstrap_creates_one_admin_key_once(session) -> None:
    created = await keys.bootstrap_admin_key(session)
    assert created is not None
    key, secret = created
    assert key.tenant.name == "default"
    assert key.scopes == ["admin"]
    assert (await keys.authenticate(session, secret=secret)).id == key.id
    await keys.revoke_key(session, key_id=key.id, tenant_id=None)
    assert await keys.bootstrap_admin_key(session) is None
    assert len(await keys.list_keys(session, tenant_id=None)) == 1


async def test_bootstrap_skips_when_keys_exist(session) -> None:
    await keys.create_key(session, tenant_name="acme", scopes=["admin"], name="k")
    assert await keys.bootstrap_admin_key(session) is None
    assert await keys.bootstrap_admin_key(session) is None
    assert len(await keys.list_keys(session, tenant_id=None)) == 1
