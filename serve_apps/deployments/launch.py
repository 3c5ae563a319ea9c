"""`clipforge serve`: run configs/serve.yaml on a local Ray (or RAY_ADDRESS) with a chosen port.

Uses only public Serve APIs: each application's builder is called with its validated args and
run with `serve.run`. The config's `http_options` (request timeout, keep-alive, root path)
apply to the proxy; host and port come from the command line. Its `logging_config` (global
and per application) applies too: configs/serve.yaml turns Serve's access log off because the
app writes one line per request itself (with the request id), so each request is logged once.
Replicas are Ray workers of this machine and inherit this process's environment, so the
embedded defaults (a pgserver Postgres URL resolved here) reach them as DATABASE_URL.

Without RAY_ADDRESS a new local Ray is started: never one that happens to run on the machine,
and, as for `clipforge process`, without token authentication unless RAY_AUTH_MODE says
otherwise (it lives only for the command, so `ray status` / `serve status` attach without a
token). The default config is scaled to its CPUs with room to scale, and autoscaling is capped
at the replicas its nodes can place. Before anything deploys, every application is checked
against the cluster's nodes (`fitting`): one that could never be scheduled is refused at once
with what is missing, instead of Serve waiting for it forever.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray.serve.schema import ServeDeploySchema

from clipforge.local_ray import init_ray, shutdown_ray
from clipforge.settings import Settings
from serve_apps.deployments.app import ClipForgeAppArgs
from serve_apps.deployments.fitting import (
    DEPLOYMENT_NAMES,
    Node,
    ServeConfigDoesNotFit,
    cap_replicas,
    fit,
    nodes_from_ray,
)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"

log = logging.getLogger("clipforge.serve")


def load_config(path: Path) -> ServeDeploySchema:
    """Parse and validate a Serve config file (format and every application's args)."""
    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    for app in schema.applications:
        ClipForgeAppArgs.model_validate(app.args or {})
    return schema


def _builder(import_path: str) -> Any:
    module, _, attr = import_path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attr)


# Ray Serve runs replica code and the handle router on extra event-loop threads by default;
# every request then crosses threads twice in each replica (ingress and model). Our replicas
# keep CPU work off their loop (`asyncio.to_thread`), so one loop is safe and saves those
# hops, which cost most when the cores are busy. Replicas inherit these from this process.
FAST_PATH_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}


# Serve's controller gives a new HTTP proxy 5 s to report ready, then kills it and starts
# another, while `serve.start` waits on the first one and fails with ActorDiedError ("killed by
# `ray.kill`", "never ran"). A proxy is a fresh worker process that imports Serve and uvicorn: on
# a busy 2-core machine (load ~12) that took longer than 5 s, and `clipforge serve` died at
# start. The controller reads this from its environment, inherited from the Ray it runs on.
PROXY_READY_ENV = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60"}


def use_fast_path() -> None:
    """Set `FAST_PATH_ENV` and `PROXY_READY_ENV` (unless the operator set them) before a local
    Ray starts."""
    for name, value in (FAST_PATH_ENV | PROXY_READY_ENV).items():
        os.environ.setdefault(name, value)


def prepare_environment(settings: Settings) -> str:
    """Resolve (embedded) Postgres, apply migrations and export DATABASE_URL for the replicas."""
    from clipforge.db.embedded import resolve_database_url
    from clipforge.db.migrate import migrate

    url = resolve_database_url(settings)
    migrate(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return url


@dataclass(frozen=True, slots=True)
class Deployable:
    """One application of the config with the arguments it will be built with."""

    name: str
    route_prefix: str | None
    import_path: str
    args: ClipForgeAppArgs
    logging_config: dict[str, Any] | None = None


def fit_applications(
    config: ServeDeploySchema, nodes: list[Node], *, may_scale: bool, fixed_nodes: bool = False
) -> list[Deployable]:
    """Every application's args, fitted to `nodes` (see `fitting.fit`); with `fixed_nodes`
    (a Ray that cannot add nodes) every `max_replicas` is capped at what `nodes` can place.

    Raises:
        ServeConfigDoesNotFit: an application cannot be scheduled; names it and what is short.
    """
    fitted: list[Deployable] = []
    for app in config.applications:
        args = ClipForgeAppArgs.model_validate(app.args or {})
        try:
            result = fit(args, nodes, may_scale=may_scale)
        except ServeConfigDoesNotFit as exc:
            raise ServeConfigDoesNotFit(f"application {app.name!r}: {exc}") from None
        if result.factor < 1.0:
            log.warning(
                "application %r, with room for one more replica of each autoscaled deployment, "
                "asks for more CPUs than this machine's Ray has (%g); every deployment's "
                "num_cpus is scaled by %.3f to fit",
                app.name,
                sum(n.cpus for n in nodes),
                result.factor,
            )
        args = result.args
        if fixed_nodes:
            args, capped = cap_replicas(args, nodes)
            for section, (wanted, placed) in capped.items():
                log.warning(
                    "application %r: %s may scale to %d replicas, not %d: this Ray's nodes "
                    "cannot place more",
                    app.name,
                    DEPLOYMENT_NAMES[section],
                    placed,
                    wanted,
                )
        logging_config = app.logging_config.model_dump() if app.logging_config else None
        fitted.append(Deployable(app.name, app.route_prefix, app.import_path, args, logging_config))
    return fitted


def http_options(config: ServeDeploySchema, *, host: str, port: int) -> dict[str, Any]:
    """The config's `http_options` (timeouts, root path, TLS) on the given host and port."""
    options = config.http_options.model_dump(exclude_unset=True)
    return options | {"host": host, "port": port}


def deploy(
    config: ServeDeploySchema, applications: list[Deployable], *, host: str, port: int
) -> None:
    """Start Serve on host:port with the config's proxy and logging options; deploy every
    application."""
    from ray import serve

    global_logging = config.logging_config.model_dump() if config.logging_config else None
    serve.start(
        http_options=http_options(config, host=host, port=port),
        logging_config=global_logging,
    )
    for app in applications:
        serve.run(
            _builder(app.import_path)(app.args),
            name=app.name,
            route_prefix=app.route_prefix,
            blocking=False,
            logging_config=app.logging_config or global_logging,
        )


def serve_until_signal(config_path: Path, settings: Settings, *, host: str, port: int) -> None:
    """Deploy, then block until SIGINT/SIGTERM and shut Serve (and a Ray started here) down.

    Exits with status 2 and one line on stderr when the config does not fit the cluster.
    """
    import ray
    from ray import serve

    config = load_config(config_path)
    prepare_environment(settings)
    address = os.environ.get("RAY_ADDRESS") or None
    started_here = not ray.is_initialized() and address is None
    if started_here:
        use_fast_path()
    if not ray.is_initialized():
        # "local" starts a fresh Ray; None would join whatever `ray start` left running here.
        init_ray(address or "local", include_dashboard=False)
    # Only the default config on a Ray of our own is resized; an explicit config or a shared
    # cluster means someone chose these numbers, so a misfit is theirs to fix.
    may_scale = started_here and config_path.resolve() == DEFAULT_CONFIG
    nodes = nodes_from_ray(ray.nodes())  # type: ignore[no-untyped-call]
    try:
        # A Ray started here never gains nodes: replicas it cannot place would stay pending.
        applications = fit_applications(
            config, nodes, may_scale=may_scale, fixed_nodes=started_here
        )
    except ServeConfigDoesNotFit as exc:
        print(f"error: {exc}", file=sys.stderr)
        shutdown_ray(started_here=started_here)
        raise SystemExit(2) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        deploy(config, applications, host=host, port=port)
        stop.wait()
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        shutdown_ray(started_here=started_here)
