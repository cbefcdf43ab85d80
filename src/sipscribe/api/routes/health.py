"""``/healthz`` and ``/metrics``: unauthenticated, for load balancers and Prometheus.

Neither is enveloped: probes and scrapers expect plain answers. Keep ``/metrics`` reachable only
from the monitoring network (it carries counts, never call content).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from sipscribe.api.deps import ServicesDep
from sipscribe.api.errors import ApiError
from sipscribe.api.schemas import HealthOut, error_responses

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Readiness: 200 once the server has started, 503 before and while stopping",
    responses=error_responses(503),
)
async def healthz(services: ServicesDep) -> HealthOut:
    if not services.ready or services.database is None:
        raise ApiError(503, "sipscribe is not ready")
    return HealthOut(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(services: ServicesDep) -> Response:
    body, content_type = services.metrics.render()
    return Response(content=body, media_type=content_type)
