"""Route modules, one per resource; ``ROUTERS`` lists them in the order they are mounted.

To add a resource (the streaming and conversation routes come later): write
``routes/<resource>.py`` with ``router = APIRouter(prefix=…, tags=[…])`` using the dependencies
in ``sipscribe.api.deps``, and append ``<resource>.router`` here. ``create_app`` also takes
``extra_routers`` for routers defined outside this package.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI

from sipscribe.api.routes import (
    calls,
    health,
    messages,
    settings,
    streaming,
    summary,
    transcription,
)

ROUTERS: list[APIRouter] = [
    health.router,
    calls.router,
    transcription.router,
    summary.router,
    settings.router,
    streaming.router,
    messages.router,
]


def include_routers(app: FastAPI, routers: Iterable[APIRouter] = ()) -> None:
    """Mount the built-in routers, then ``routers``."""
    for router in [*ROUTERS, *routers]:
        app.include_router(router)
