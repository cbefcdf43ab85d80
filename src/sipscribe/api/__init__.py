"""api layer: the HTTP API (FastAPI) over the store, plus Prometheus metrics.

``create_app(settings, services=AppServices(...))`` builds it; see ``api.main``.
"""

from sipscribe.api.main import create_app
from sipscribe.api.metrics import Metrics
from sipscribe.api.services import AppServices, SummaryEngine, TranscriptionRunner

__all__ = ["AppServices", "Metrics", "SummaryEngine", "TranscriptionRunner", "create_app"]
