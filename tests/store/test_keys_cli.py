"""``sipscribe keys`` functions (``sipscribe/keys_cli.py``), on a SQLite data dir."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sipscribe import keys_cli
from sipscribe.config import Settings

from .backends import run_sync


@pytest.fixture
def cli_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def _create(settings: Settings, *args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = keys_cli.create(settings, *args, stdout=out, stderr=err)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def test_create_prints_only_the_secret_on_stdout(cli_settings: Settings) -> None:
    code, out, err = _create(cli_settings, "acme", ["calls.read", "calls.write"], "crm")
    assert code == 0
    secret = out.strip()
    assert out == secret + "\n"
    assert secret.startswith("ssk_") and len(secret) == 47
    assert secret not in err
    assert "for tenant 'acme' with scopes calls.read, calls.write" in err
    assert "shown only once" in err
    raw = b"".join(p.read_bytes() for p in (cli_settings.data_dir).glob("sipscribe.db*"))
    assert secret.encode() not in raw


def test_create_rejects_unknown_scope(cli_settings: Settings) -> None:
    code, out, err = _create(cli_settings, "acme", ["calls.delete"], "crm")
    assert (code, out) == (2, "")
    assert err.startswith("error: unknown scope 'calls.delete'; known scopes: ")


def test_list_and_revoke(cli_settings: Settings) -> None:
    _, secret, _ = _create(cli_settings, "acme", ["admin"], "ops")
    out, err = io.StringIO(), io.StringIO()
    assert keys_cli.list_keys(cli_settings, stdout=out, stderr=err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "ID",
        "TENANT",
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST",
        "USED",
        "STATUS",
    ]
    key_id = lines[1].split()[0]
    assert lines[1].split()[1:4] == ["acme", "ops", secret.strip()[:12] + "…"]
    assert lines[1].split()[-2:] == ["never", "active"]
    assert secret.strip() not in out.getvalue()

    err = io.StringIO()
    assert keys_cli.revoke(cli_settings, key_id, stderr=err) == 0
    assert err.getvalue().startswith(f"revoked key {key_id} ")
    out = io.StringIO()
    keys_cli.list_keys(cli_settings, stdout=out, stderr=io.StringIO())
    assert "revoked " in out.getvalue().splitlines()[1]

    err = io.StringIO()
    assert keys_cli.revoke(cli_settings, "no-such-id", stderr=err) == 1
    assert err.getvalue() == "error: no API key with id 'no-such-id'\n"


def test_list_filters_by_tenant(cli_settings: Settings) -> None:
    _create(cli_settings, "acme", ["admin"], "a")
    _create(cli_settings, "globex", ["admin"], "g")
    out = io.StringIO()
    assert keys_cli.list_keys(cli_settings, tenant="globex", stdout=out, stderr=io.StringIO()) == 0
    rows = out.getvalue().splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["globex"]
    err = io.StringIO()
    assert keys_cli.list_keys(cli_settings, tenant="nope", stdout=io.StringIO(), stderr=err) == 1
    assert err.getvalue() == "error: no tenant named 'nope'\n"


def test_empty_list_says_how_to_create(cli_settings: Settings) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert keys_cli.list_keys(cli_settings, stdout=out, stderr=err) == 0
    assert len(out.getvalue().splitlines()) == 1
    assert "sipscribe keys create" in err.getvalue()


def test_first_admin_key_only_on_a_fresh_database(cli_settings: Settings) -> None:
    secret = keys_cli.ensure_first_admin_key(cli_settings)
    assert secret is not None and secret.startswith("ssk_")
    assert keys_cli.ensure_first_admin_key(cli_settings) is None
    out = io.StringIO()
    keys_cli.list_keys(cli_settings, stdout=out, stderr=io.StringIO())
    assert out.getvalue().splitlines()[1].split()[1:3] == ["default", "bootstrap"]


async def test_first_admin_key_from_a_running_loop(cli_settings: Settings) -> None:
    from sipscribe.store.db import init_db

    database = await init_db(cli_settings)
    try:
        secret = await keys_cli.bootstrap_admin_key(database)
        assert secret is not None
        assert await keys_cli.bootstrap_admin_key(database) is None
    finally:
        await database.dispose()
    # The sync variant runs its own loop, here in a worker thread because a loop is running.
    assert run_sync(_async_none(cli_settings)) is None


async def _async_none(settings: Settings) -> str | None:
    import asyncio

    return await asyncio.to_thread(keys_cli.ensure_first_admin_key, settings)
