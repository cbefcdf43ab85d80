"""API limits and their defaults.

They are read from the process ``Settings`` when it defines them (so an operator can set
``SIPSCRIBE_MAX_UPLOAD_BYTES`` once the settings object declares it), else the defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_JSON_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ApiOptions:
    """Limits the API enforces on requests."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_json_body_bytes: int = DEFAULT_MAX_JSON_BODY_BYTES

    @classmethod
    def from_settings(cls, settings: Any) -> ApiOptions:
        return cls(
            max_upload_bytes=int(getattr(settings, "max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES)),
            max_json_body_bytes=int(
                getattr(settings, "max_json_body_bytes", DEFAULT_MAX_JSON_BODY_BYTES)
            ),
        )
