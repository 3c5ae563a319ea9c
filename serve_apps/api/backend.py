"""The interface the API uses to reach the online models.

The Serve ingress implements it with deployment handles (`serve_apps.deployments.ingress`);
the standalone uvicorn tier has none, and its model endpoints answer 503. Keeping the API on
this protocol means the FastAPI app never imports Ray.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from clipforge.types import Transcript
from serve_apps.api.protocol_models import (
    CaptionsRequest,
    CaptionsResponse,
    HighlightsRequest,
    HighlightsResponse,
)


class ModelBackend(Protocol):
    """Online inference, batched and scaled by whoever implements it."""

    async def transcribe(self, audio: np.ndarray, *, language: str | None) -> Transcript:
        """Transcribe 16 kHz mono float32 audio."""
        ...

    async def highlights(self, request: HighlightsRequest) -> HighlightsResponse:
        """Score text windows."""
        ...

    async def captions(self, request: CaptionsRequest) -> CaptionsResponse:
        """Build cues and a title."""
        ...
