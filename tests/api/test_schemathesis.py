"""Property-based checks of the whole API against its own ``/openapi.json`` (schemathesis).

Every GET operation is called with generated parameters, with and without a valid key; each
answer must be documented, match its schema and never be a 5xx. schemathesis drives the app
in-process on its own event loop thread, so the database is opened in a lifespan there.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from sipscribe.api.main import create_app  # noqa: E402
from sipscribe.api.services import AppServices  # noqa: E402
from sipscribe.config import Settings  # noqa: E402
from sipscribe.store import calls, keys, summaries, tenants, utterances  # noqa: E402
from sipscribe.store.db import init_db  # noqa: E402

_DATA = tempfile.TemporaryDirectory(prefix="sipscribe-schemathesis-")
_SETTINGS = Settings(data_dir=Path(_DATA.name))
_SERVICES = AppServices()
_STATE: dict[str, str] = {}


@asynccontextmanager
async def _lifespan(_app: Any) -> AsyncIterator[None]:
    database = await init_db(_SETTINGS)
    async with database.session() as s:
        _, secret = await keys.create_key(s, tenant_name="fuzz", scopes=["admin"], name="fuzz")
        tenant = await tenants.get_tenant_by_name(s, name="fuzz")
        # Generated requests must not run into the rate limit.
        await tenants.update_tenant_settings(s, tenant_id=tenant.id, rate_limit_per_minute=10**9)
        call = await calls.create_call(s, tenant_id=tenant.id, source="upload", state="completed")
        await utterances.add_utterance(
            s, call_id=call.id, channel=0, start_ms=0, end_ms=800, text="Hello.", role="agent"
        )
        await calls.set_transcription_state(
            s, call_id=call.id, tenant_id=tenant.id, state="speech_stored"
        )
        job = await summaries.request_summary(s, call_id=call.id, instructions=None)
        await summaries.finish_summary(s, summary_id=job.id, result={"headline": "Hello."})
    _STATE["secret"] = secret
    _SERVICES.database = database
    _SERVICES.ready = True
    try:
        yield
    finally:
        await _SERVICES.aclose(timeout=5.0)
        await database.dispose()


_app = create_app(_SETTINGS, services=_SERVICES)
_app.router.lifespan_context = _lifespan
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@schema.include(method="GET").parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_get_operations_with_a_key(case: Any) -> None:
    # A schema-valid cursor can still be one we never issued: a 400 for it is right.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_STATE['secret']}"},
        excluded_checks=[positive_data_acceptance],
    )


@schema.include(method="GET").parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_get_operations_without_a_key(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (case.path, response.text)
    assert "x-request-id" in response.headers
