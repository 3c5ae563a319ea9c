"""Standalone entry point: `uvicorn --factory serve_apps.api.main:create_app_from_env`.

This is what `clipforge api` runs: the same app as the Serve ingress, without the Serve proxy
in front (several times the request rate on the same cores; docs/capacity.md). Model endpoints
answer 503 here unless SERVE_MODELS_ADDRESS names a Ray cluster running the Serve application:
then they call its model deployments through handles (`serve_apps.deployments.gateway`).
"""

from __future__ import annotations

from fastapi import FastAPI

from clipforge.logging import configure_logging
from clipforge.observability.setup import init_observability
from clipforge.settings import get_settings
from serve_apps.api.app import create_app
from serve_apps.api.backend import ModelBackend
from serve_apps.api.deps import ApiDeps


def create_app_from_env() -> FastAPI:
    """Open the process's connections from the environment and build the app."""
    settings = get_settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    init_observability(settings, "api")
    models: ModelBackend | None = None
    if settings.serve_models_address:
        # Imported only here: without it the standalone tier never loads Ray.
        from serve_apps.deployments.gateway import connect_models

        models = connect_models(
            settings.serve_models_address,
            settings.serve_models_app,
            grpc=settings.serve_models_grpc,
        )
    return create_app(ApiDeps.open(settings, models=models), close_deps=True)
