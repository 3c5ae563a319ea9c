"""`clipforge serve`: run configs/serve.yaml on a local Ray (or RAY_ADDRESS) with a chosen port.

Uses only public Serve APIs: each application's builder is called with its validated args and
run with `serve.run`; HTTP host and port come from the command line. Replicas are Ray workers
of this machine and inherit this process's environment, so the embedded defaults (a pgserver
Postgres URL resolved here) reach them as DATABASE_URL.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import yaml
from ray.serve.schema import ServeDeploySchema

from clipforge.settings import Settings
from serve_apps.deployments.app import ClipForgeAppArgs

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"


def load_config(path: Path) -> ServeDeploySchema:
    """Parse and validate a Serve config file (format and every application's args)."""
    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    for app in schema.applications:
        ClipForgeAppArgs.model_validate(app.args or {})
    return schema


def _builder(import_path: str) -> Any:
    module, _, attr = import_path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attr)


def prepare_environment(settings: Settings) -> str:
    """Resolve (embedded) Postgres, apply migrations and export DATABASE_URL for the replicas."""
    from clipforge.db.embedded import resolve_database_url
    from clipforge.db.migrate import migrate

    url = resolve_database_url(settings)
    migrate(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return url


def deploy(config: ServeDeploySchema, *, host: str, port: int) -> None:
    """Start Serve on host:port and deploy every application of `config`."""
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    for app in config.applications:
        args = ClipForgeAppArgs.model_validate(app.args or {})
        serve.run(
            _builder(app.import_path)(args),
            name=app.name,
            route_prefix=app.route_prefix,
            blocking=False,
        )


def serve_until_signal(config_path: Path, settings: Settings, *, host: str, port: int) -> None:
    """Deploy, then block until SIGINT/SIGTERM and shut Serve down."""
    import ray
    from ray import serve

    config = load_config(config_path)
    prepare_environment(settings)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False)
    deploy(config, host=host, port=port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()  # type: ignore[no-untyped-call]
