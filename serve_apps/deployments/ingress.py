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


def over_grpc(handle: Handle | None) -> Handle | None:
    """`handle` sending its requests over the replica's inter-deployment gRPC server instead
    of as Ray actor tasks.

    Every Serve replica runs that server; a handle uses it with `_by_reference=False`. The
    arguments are pickled into the gRPC message and the result comes back in the reply, with
    no task submission, object-store entry or reference counting: a no-op call from an async
    caller took 0.5-1.2 ms less (median) than as an actor task, interleaved in one process
    (`benchmarks.handle_hop`; docs/capacity.md, fifth round). Messages are capped at 4 MiB (`RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH`), so only
    the small JSON-sized requests (scoring, captions) go this way; audio stays by reference.
    """
    return None if handle is None else handle.options(_by_reference=False)


class ServeModelBackend:
    """`ModelBackend` over deployment handles; a disabled deployment answers 503.

    Scoring and caption requests are a few KiB and take tens of ms, so the hop is a visible
    share of them: they go over gRPC (`over_grpc`). An ASR request carries its audio (up to
    `api_max_asr_audio_s`, 120 s by default: 7.7 MB of float32, over gRPC's message cap) and
    takes seconds, so it stays a Ray actor task, whose arguments travel through the object
    store.
    """

    def __init__(
        self,
        asr: Handle | None,
        highlight: Handle | None,
        caption: Handle | None,
        *,
        grpc: bool = True,
    ) -> None:
        self._asr = asr
        small = over_grpc if grpc else (lambda handle: handle)
        self._highlight, self._caption = small(highlight), small(caption)

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
            models=ServeModelBackend(asr, highlight, caption, grpc=loaded.serve_models_grpc),
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
