"""Fixtures for the store tests: the database backends of ``backends.py``."""

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


_backends = _load("sipscribe_test_backends", Path(__file__).with_name("backends.py"))

backend = _backends.backend
postgres_url = _backends.postgres_url
pg_schema = _backends.pg_schema
sqlite_template = _backends.sqlite_template
db_target = _backends.db_target
db_settings = _backends.db_settings
database = _backends.database
session = _backends.session
