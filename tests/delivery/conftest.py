"""Fixtures for the delivery tests: the database backends of ``tests/store/backends.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_backends = _load(
    "sipscribe_test_backends", Path(__file__).resolve().parents[1] / "store" / "backends.py"
)

backend = _backends.backend
postgres_url = _backends.postgres_url
pg_schema = _backends.pg_schema
sqlite_template = _backends.sqlite_template
db_target = _backends.db_target
db_settings = _backends.db_settings
database = _backends.database
session = _backends.session


import httpx  # noqa: E402
import pytest  # noqa: E402

from sipscribe.api.main import create_app  # noqa: E402
from sipscribe.api.routes import conversations, exports, webhooks  # noqa: E402
from sipscribe.api.services import AppServices  # noqa: E402
from sipscribe.store import keys  # noqa: E402

DELIVERY_ROUTERS = [webhooks.router, exports.router, conversations.router]


class DeliveryApi:
    """The API with the delivery routers, an in-process client and a key factory."""

    def __init__(self, app, client: httpx.AsyncClient, database) -> None:
        self.app = app
        self.client = client
        self.database = database
        self._keys: dict[tuple, str] = {}

    async def headers(self, tenant: str = "acme", scopes: tuple[str, ...] = ("admin",)) -> dict:
        wanted = (tenant, scopes)
        if wanted not in self._keys:
            async with self.database.session() as s:
                _, secret = await keys.create_key(
                    s, tenant_name=tenant, scopes=list(scopes), name="test"
                )
            self._keys[wanted] = secret
        return {"Authorization": f"Bearer {self._keys[wanted]}"}


@pytest.fixture
async def delivery_api(database, db_settings):
    services = AppServices(database=database, ready=True)
    app = create_app(db_settings, services=services, extra_routers=DELIVERY_ROUTERS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sipscribe.test") as client:
        yield DeliveryApi(app, client, database)
    await services.aclose(timeout=5.0)
