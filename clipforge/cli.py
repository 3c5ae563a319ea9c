"""The `clipforge` command line. Later issues add `process`, `worker`, `serve` and `api`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from clipforge.errors import ClipForgeError
from clipforge.settings import Settings, get_settings

if TYPE_CHECKING:
    from pipelines.config import AspectRatio

app = typer.Typer(
    help="ClipForge: long videos in, captioned highlight clips out.", no_args_is_help=True
)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _settings() -> Settings:
    try:
        return get_settings()
    except ClipForgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _database_url(settings: Settings) -> str:
    from clipforge.db.embedded import resolve_database_url

    return resolve_database_url(settings)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (idempotent; safe to run concurrently)."""
    from clipforge.db.migrate import migrate

    applied = migrate(_database_url(_settings()))
    typer.echo(
        f"applied {len(applied)} migration(s): {', '.join(applied)}"
        if applied
        else "schema up to date"
    )


@keys_app.command("create")
def keys_create(name: str = typer.Option(..., "--name", help="Label for the key.")) -> None:
    """Create an API key and print it once; only its hash is stored."""
    import psycopg
    from psycopg.rows import dict_row

    from clipforge.db.migrate import migrate
    from clipforge.db.repo.api_keys import create_api_key

    url = _database_url(_settings())
    migrate(url)
    try:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            key, raw = create_api_key(conn, name=name)
    except ClipForgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created key {key.id} ({key.name}); store it now, it is not shown again:", err=True)
    sys.stdout.write(raw + "\n")


@app.command("worker")
def worker(
    config: Annotated[
        Path | None, typer.Option(help="Pipeline config (default configs/pipeline.yaml).")
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port (0 disables).")] = 9101,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit when no job is runnable.")
    ] = False,
) -> None:
    """Run the queue worker: claims stage jobs and runs them on Ray Data until SIGTERM."""
    from clipforge.logging import configure_logging
    from pipelines.main import run_worker  # the CLI is the composition root; core never imports it

    settings = _settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    run_worker(
        settings, config_path=config, metrics_port=metrics_port or None, until_idle=until_idle
    )


webhooks_app = typer.Typer(help="Webhook deliveries.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="HTTP port of the Serve proxy.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    config: Annotated[
        Path | None, typer.Option(help="Serve config (default configs/serve.yaml).")
    ] = None,
) -> None:
    """Run the Ray Serve application (API ingress + model deployments) on a local Ray."""
    from clipforge.logging import configure_logging
    from serve_apps.deployments.launch import DEFAULT_CONFIG, serve_until_signal

    settings = _settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    serve_until_signal(config or DEFAULT_CONFIG, settings, host=host, port=port)


@app.command("api")
def api(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the API alone under uvicorn (high-QPS tier; /v1/models/* answer 503 here)."""
    import os

    import uvicorn

    from clipforge.db.migrate import migrate

    url = _database_url(_settings())
    migrate(url)
    os.environ["DATABASE_URL"] = url  # worker processes resolve the same (embedded) database
    uvicorn.run(
        "serve_apps.api.main:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # the app writes its own JSON access log with request ids
        log_config=None,
    )


@webhooks_app.command("deliver")
def webhooks_deliver(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit when nothing is queued.")
    ] = False,
) -> None:
    """Deliver queued webhook events (signed, retried with backoff through the job queue)."""
    from clipforge.logging import configure_logging
    from clipforge.webhooks import run_delivery_worker

    settings = _settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    sent = run_delivery_worker(settings, _database_url(settings), until_idle=until_idle)
    typer.echo(f"delivered {sent} webhook job(s)", err=True)


@app.command("process")
def process(
    source: Annotated[str, typer.Argument(help="Video file path or http(s) URL.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("clipforge-out"),
    aspect: Annotated[str, typer.Option(help="Clip aspect ratio: 9:16, 1:1 or 16:9.")] = "9:16",
    style: Annotated[
        str, typer.Option(help="Caption style: karaoke, bold or minimal.")
    ] = "karaoke",
    top_k: Annotated[int, typer.Option(min=1, max=20, help="Number of clips.")] = 3,
    config: Annotated[Path | None, typer.Option(help="Pipeline config file.")] = None,
) -> None:
    """Turn one video into captioned clips on the embedded default (no services needed)."""
    from clipforge.logging import configure_logging
    from pipelines.process import ProcessOptions, process_video

    if aspect not in ("9:16", "1:1", "16:9"):
        typer.echo("error: --aspect must be 9:16, 1:1 or 16:9", err=True)
        raise typer.Exit(2)
    settings = _settings()
    configure_logging("WARNING", json_logs=False)
    ratio = cast("AspectRatio", aspect)  # checked above
    options = ProcessOptions(
        aspect_ratio=ratio, caption_style=style, top_k=top_k, config_path=config
    )
    try:
        result = process_video(source, out, settings, options)
    except ClipForgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(result['clips'])} clip(s) written to {out}/ (open {out}/report.html)")


if __name__ == "__main__":  # pragma: no cover
    app()
