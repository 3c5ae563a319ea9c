"""The API ingress deployment: the FastAPI app of `serve_apps.api`, built inside each replica.

`@serve.ingress()` without an app defers building it to `__serve_build_asgi_app__`, which runs
in the replica after `__init__` has opened the connections: the same `create_app` factory as
the standalone tier, with a model backend that calls the model deployments through handles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import FastAPI
from ray import serve
from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle

from clipforge.errors import ClipForgeError
from clipforge.metrics import ray_counter, ray_histogram
from clipforge.types import Transcript
from serve_apps.api.errors import ModelsUnavailable
from serve_apps.api.middleware import Observer
from serve_apps.api.protocol_models import (
    CaptionsRequest,
    CaptionsResponse,
    HighlightsRequest,
    HighlightsResponse,
)

Handle = DeploymentHandle[Any]
_LATENCY_BOUNDARIES = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeModelBackend:
    """`ModelBackend` over deployment handles; a disabled deployment answers 503."""

    def __init__(
        self,
        asr: Handle | None,
        highlight: Handle | None,
        caption: Handle | None,
    ) -> None:
        self._asr, self._highlight, self._caption = asr, highlight, caption

    async def _call(self, handle: Handle | None, method: str, *args: Any) -> Any:
        if handle is None:
            raise ModelsUnavailable(f"the {method} model is not deployed in this application")
        try:
            return await getattr(handle, method).remote(*args)
        except RayTaskError as exc:
            # Domain errors raised in a replica keep their type and message for the client.
            cause = exc.cause
            if isinstance(cause, ClipForgeError):
                raise cause from None
            raise

    async def transcribe(self, audio: np.ndarray, *, language: str | None) -> Transcript:
        """Through the ASR deployment."""
        result: Transcript = await self._call(self._asr, "transcribe", audio, language)
        return result

    async def highlights(self, request: HighlightsRequest) -> HighlightsResponse:
        """Through the highlight deployment."""
        result: HighlightsResponse = await self._call(self._highlight, "score", request)
        return result

    async def captions(self, request: CaptionsRequest) -> CaptionsResponse:
        """Through the caption deployment."""
        result: CaptionsResponse = await self._call(self._caption, "captions", request)
        return result


def ray_http_observer() -> Observer:
    """Request metrics through `ray.util.metrics`: the only ones Ray exports from replicas."""
    requests = ray_counter(
        "clipforge_serve_http_requests",
        "HTTP requests served by the ingress.",
        ("route", "method", "status"),
    )
    latency = ray_histogram(
        "clipforge_serve_http_request_duration_seconds",
        "Ingress request latency.",
        _LATENCY_BOUNDARIES,
        ("route", "method"),
    )

    def observe(route: str, method: str, status: int, seconds: float) -> None:
        requests.inc(1, tags={"route": route, "method": method, "status": str(status)})
        latency.observe(seconds, tags={"route": route, "method": method})

    return observe


@serve.deployment(name="ApiIngress", ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class ApiIngress:
    """The public REST API."""

    def __init__(
        self,
        settings: dict[str, Any],
        redis_prefix: str,
        asr: Handle | None,
        highlight: Handle | None,
        caption: Handle | None,
    ) -> None:
        """Open Postgres, Redis and storage clients for this replica."""
        from clipforge.logging import configure_logging
        from clipforge.observability.setup import init_observability
        from clipforge.settings import load_settings
        from serve_apps.api.deps import ApiDeps

        loaded = load_settings(**settings)
        configure_logging(loaded.log_level, json_logs=loaded.log_json)
        init_observability(loaded, "serve-ingress")
        self._deps = ApiDeps.open(
            loaded,
            models=ServeModelBackend(asr, highlight, caption),
            redis_prefix=redis_prefix,
            application_name="clipforge-serve-ingress",
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The app, built once the replica's connections exist."""
        from serve_apps.api.app import create_app

        return create_app(self._deps, observers=(ray_http_observer(),))

    def __del__(self) -> None:
        """Close the replica's connections."""
        self._deps.close()
