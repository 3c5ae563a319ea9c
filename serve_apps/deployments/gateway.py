"""Model endpoints on the uvicorn tier: with `SERVE_MODELS_ADDRESS` set, `clipforge api` answers
`/v1/models/*` by calling the Serve model deployments through deployment handles.

Through the Serve HTTP proxy a model request crosses three processes (proxy, ingress replica,
model replica), and the ingress fetches the request body from the proxy in a second round
trip. The uvicorn process has already parsed, authenticated and rate-limited the request, so it
sends the validated request straight to a model replica: one hop, into the same `Batcher` as
every other caller's requests, so batching and autoscaling are those of the Serve deployments
(figures: docs/capacity.md). Each API process becomes a driver of that Ray cluster: it needs
the cluster's GCS port (and the same Ray and Python versions), not the Serve proxy's port.
"""

from __future__ import annotations

import os
import signal
import threading

from clipforge.errors import ConfigError
from serve_apps.deployments.fitting import DEPLOYMENT_NAMES
from serve_apps.deployments.ingress import ServeModelBackend

# The handles' router runs on the calling event loop (uvicorn's) instead of a loop thread of
# its own, as in `clipforge serve`'s replicas: every call would otherwise cross threads twice.
_ROUTER_ENV = {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}


def connect_models(address: str, app_name: str, *, grpc: bool = True) -> ServeModelBackend:
    """Join the Ray cluster at `address` and return handles to `app_name`'s model deployments
    (a model the application does not deploy answers 503, as on the Serve ingress). With
    `grpc` (the default) scoring and caption requests use Serve's gRPC transport
    (`ingress.over_grpc`); without it every call is a Ray actor task.

    Raises:
        ConfigError: the cluster runs no Serve application called `app_name`.
    """
    for name, value in _ROUTER_ENV.items():
        os.environ.setdefault(name, value)
    import ray
    from ray import serve

    if not ray.is_initialized():
        _init_keeping_signal_handlers(address)
    applications = serve.status().applications
    if app_name not in applications:
        raise ConfigError(
            f"SERVE_MODELS_ADDRESS {address}: no Serve application {app_name!r} "
            f"(running: {sorted(applications) or 'none'})"
        )
    deployed = applications[app_name].deployments

    def handle(model: str) -> serve.handle.DeploymentHandle | None:  # type: ignore[type-arg]
        name = DEPLOYMENT_NAMES[model]
        return serve.get_deployment_handle(name, app_name=app_name) if name in deployed else None

    return ServeModelBackend(handle("asr"), handle("highlight"), handle("caption"), grpc=grpc)


def _init_keeping_signal_handlers(address: str) -> None:
    """`ray.init` without losing the server's SIGTERM/SIGINT handlers: Ray's core worker
    installs its own (log and abort), so a stopped `clipforge api` would die with SIGABRT
    instead of draining its requests."""
    import ray

    if threading.current_thread() is not threading.main_thread():
        ray.init(address=address, log_to_driver=False)
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    ray.init(address=address, log_to_driver=False)
    for sig, handler in previous.items():
        if handler is not None:
            signal.signal(sig, handler)
