"""Alembic migrations for the store; applied programmatically by ``sipscribe.store.db.migrate``."""
