"""store layer: calls, transcripts, keys, summaries and the webhook outbox in SQL.

``init_db(settings)`` opens and migrates the database; every query is a plain keyword-only async
function in the module named for what it touches (``calls``, ``utterances``, ``keys``, …).
"""

from sipscribe.store.db import Database, init_db

__all__ = ["Database", "init_db"]
