"""The `clipforge` command line: `process`, `worker`, `backfill`, `serve`, `api` and the operator
commands. A composition root: each command imports its pipeline inside the function, so the core
imports no pipeline, model or app at import time (docs/architecture.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clipforge.errors import ClipForgeError, ValidationFailed
from clipforge.ops.backup_cli import backup_app
from clipforge.settings import Settings, get_settings
from clipforge.types import AspectRatio, CaptionStyle, Layout

if TYPE_CHECKING:
    from clipforge.db.pool import Conn
    from pipelines.local.one_video import ProcessOptions

app = typer.Typer(
    help="ClipForge: long videos in, captioned highlight clips out.", no_args_is_help=True
)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")


def _show_version(value: bool) -> None:
    if value:
        from clipforge import __version__

        typer.echo(f"clipforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """ClipForge: long videos in, captioned highlight clips out."""


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


@contextmanager
def _keys_connection() -> Iterator[Conn]:
    """A migrated connection for the `keys` commands; the transaction commits on exit."""
    import psycopg
    from psycopg.rows import dict_row

    from clipforge.db.migrate import migrate

    url = _database_url(_settings())
    migrate(url)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        yield conn


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[
        bool, typer.Option("--all", help="Include revoked keys (with when they were revoked).")
    ] = False,
) -> None:
    """List API keys (id, prefix, name, created; never the key itself), oldest first."""
    from clipforge.db.repo.api_keys import list_api_keys

    with _keys_connection() as conn:
        keys = list_api_keys(conn, include_revoked=all_keys)
    for key in keys:
        revoked = f"\trevoked {_utc(key.revoked_at)}" if key.revoked_at else ""
        typer.echo(f"{key.id}\t{key.prefix}…\t{_utc(key.created_at)}\t{key.name}{revoked}")
    if not keys:
        typer.echo("no API keys" if all_keys else "no active API keys", err=True)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (from `clipforge keys list`).")],
) -> None:
    """Revoke an API key: API processes refuse it within API_KEY_CACHE_TTL_S (10 s)."""
    import uuid

    from clipforge.db.repo.api_keys import get_api_key, revoke_api_key

    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        typer.echo(f"error: {key_id!r} is not a key id (see `clipforge keys list`)", err=True)
        raise typer.Exit(2) from None
    with _keys_connection() as conn:
        revoked = revoke_api_key(conn, key_id=parsed)
        known = revoked or get_api_key(conn, key_id=parsed) is not None
    if not known:
        typer.echo(f"error: no API key {parsed}", err=True)
        raise typer.Exit(2)
    typer.echo(f"revoked key {parsed}" if revoked else f"key {parsed} was already revoked")


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
    """Run the queue worker: claims stage jobs and runs them on warm Ray actors until SIGTERM."""
    from clipforge.db.embedded import leaving_embedded_on_exit
    from clipforge.logging import configure_logging
    from pipelines.engine.main import (
        run_worker,  # the CLI is the composition root; core never imports it
    )

    settings = _settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    with leaving_embedded_on_exit():  # the worker may start or join the embedded Postgres
        run_worker(
            settings, config_path=config, metrics_port=metrics_port or None, until_idle=until_idle
        )


@app.command(
    "backfill",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def backfill(ctx: typer.Context) -> None:
    """Re-run a stage over stored videos (`python -m pipelines.batch.backfill`, here as the driver;
    RAY_ADDRESS selects the cluster). `clipforge backfill --help` lists its options."""
    from pipelines.batch.backfill import main as backfill_main

    backfill_main(ctx.args)


dataset_app = typer.Typer(help="Training and evaluation data.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("export")
def dataset_export(
    out: Annotated[str, typer.Option(help="Output folder (or s3:// URI) for the Parquet files.")],
    since: Annotated[
        str | None, typer.Option(help="Only videos created at or after this ISO time.")
    ] = None,
) -> None:
    """Write one Parquet row per clip and per scored window of every ready video (Ray Data)."""
    from datetime import datetime

    from clipforge.db.migrate import migrate
    from clipforge.db.pool import create_pool
    from pipelines.batch.dataset_export import export_dataset

    settings = _settings()
    url = _database_url(settings)
    migrate(url)
    with create_pool(settings, url, application_name="clipforge-dataset") as pool:
        videos = export_dataset(
            pool,
            out,
            database_url=url,
            since=datetime.fromisoformat(since) if since else None,
        )
    typer.echo(f"exported {videos} video(s) to {out}")


webhooks_app = typer.Typer(help="Webhook deliveries.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(backup_app, name="backup")  # create|list|restore|verify|wal-config|wal-sync


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

    from clipforge.db.embedded import leaving_embedded_on_exit
    from clipforge.db.migrate import migrate
    from serve_apps.api.server import uvicorn_options

    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal: without this the
    # process died of it there and never left the embedded Postgres it started or joined.
    with leaving_embedded_on_exit():
        settings = _settings()
        url = _database_url(settings)
        migrate(url)
        os.environ["DATABASE_URL"] = url  # worker processes resolve the same (embedded) database
        if workers > 1:
            _multiprocess_metrics_dir()
        uvicorn.run(
            "serve_apps.api.main:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # the app writes its own JSON access log with request ids
            log_config=None,
            # Header size, count and time limits, keep-alive and backlog (docs/operations.md).
            **uvicorn_options(settings),
        )


def _multiprocess_metrics_dir() -> None:
    # Each worker answers /metrics for the whole instance from files in this folder (see
    # clipforge.metrics); stale files of an earlier run would add to the counters, so clear it.
    import os
    import tempfile
    from pathlib import Path

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="cf-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


@webhooks_app.command("deliver")
def webhooks_deliver(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Exit when nothing is queued.")
    ] = False,
) -> None:
    """Deliver queued webhook events (signed, retried with backoff through the job queue)."""
    from clipforge.db.embedded import leaving_embedded_on_exit
    from clipforge.logging import configure_logging
    from clipforge.queue import QueuePolicy
    from clipforge.webhooks import run_delivery_worker

    settings = _settings()
    configure_logging(settings.log_level, json_logs=settings.log_json)
    policy = QueuePolicy.from_settings(settings)  # QUEUE_MAX_ATTEMPTS, QUEUE_BACKOFF_*, leases
    with leaving_embedded_on_exit():
        sent = run_delivery_worker(settings, _database_url(settings), policy, until_idle=until_idle)
    typer.echo(f"delivered {sent} webhook job(s)", err=True)


@app.command("process")
def process(
    source: Annotated[str, typer.Argument(help="Video file path or http(s) URL.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("clipforge-out"),
    aspect: Annotated[AspectRatio, typer.Option(help="Clip aspect ratio.")] = "9:16",
    style: Annotated[CaptionStyle, typer.Option(help="Caption style.")] = "auto",
    top_k: Annotated[int, typer.Option(min=1, max=20, help="Number of clips.")] = 3,
    layout: Annotated[
        Layout,
        typer.Option(
            help="Who the crop follows: auto (the active speaker; split when two alternate "
            "quickly), speaker, split (two stacked crops) or center."
        ),
    ] = "auto",
    config: Annotated[Path | None, typer.Option(help="Pipeline config file.")] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the video's media and rows in DATA_DIR.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace another run's outputs in --out (removed first)."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Ray's and ffmpeg's output too.")
    ] = False,
    studio: Annotated[
        str | None,
        typer.Option(
            "--studio",
            metavar="API_URL",
            help="Keep the video for the editing page of the `clipforge api` at API_URL (same "
            "database), owned by the key in CLIPFORGE_API_KEY; the report links to the page "
            "when that server answers.",
        ),
    ] = None,
) -> None:
    """Turn one video into captioned clips on the embedded default (no services needed)."""
    from pipelines.local.preflight import check_out_dir, check_source  # light: no Ray, no database

    settings = _settings()
    api_key = settings.clipforge_api_key
    studio_key = api_key.get_secret_value() if studio and api_key else None
    try:  # user errors end here, in well under a second, before anything starts
        if studio and not studio.startswith(("http://", "https://")):
            raise ValidationFailed(f"--studio takes the API's http(s) URL, not {studio!r}")
        if studio and not studio_key:
            raise ValidationFailed("--studio needs CLIPFORGE_API_KEY (clipforge keys create)")
        checked = check_source(source, settings)
        local = Path(checked.location) if checked.kind == "file" else None
        out_dir = check_out_dir(out, overwrite=overwrite, source=local)
    except ClipForgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    options_ = _process_options(aspect, style, top_k, config, keep, layout, studio, studio_key)
    log_path = out_dir / "clipforge.log"
    code, message = _run_process(source, out_dir, settings, options_, log_path, verbose)
    typer.echo(message, err=code != 0)
    if code == 130:
        _exit_now(code)
    raise typer.Exit(code)


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown. Interrupted during start-up, a half-initialised
    extension (Ray's core worker inside a `ray.get`) can crash that teardown (SIGSEGV instead of
    130); by now everything the run started is stopped (its Postgres, its Ray)."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _process_options(
    aspect: AspectRatio,
    style: CaptionStyle,
    top_k: int,
    config: Path | None,
    keep: bool,
    layout: Layout,
    studio_url: str | None = None,
    studio_key: str | None = None,
) -> ProcessOptions:
    from pipelines.local.one_video import ProcessOptions

    return ProcessOptions(
        aspect_ratio=aspect,
        caption_style=style,
        top_k=top_k,
        config_path=config,
        keep=keep,
        layout=layout,
        studio_url=studio_url,
        studio_key=studio_key,
    )


def _run_process(
    source: str,
    out_dir: Path,
    settings: Settings,
    options: ProcessOptions,
    log_path: Path,
    verbose: bool,
) -> tuple[int, str]:
    """Run the pipeline with framework output in `log_path`; (exit code, last line to print)."""
    import logging

    from clipforge.db.embedded import embedded_running, stop_embedded
    from clipforge.terminal import framework_output_to, interrupted
    from pipelines.local.progress import RunProgress

    _stop_on_signals()
    with framework_output_to(log_path, enabled=not verbose) as terminal:
        print(f"clipforge: {source} -> {out_dir}/  (log: {log_path})", file=terminal)
        display = RunProgress(terminal)
        try:
            with display:
                # Importing the pipeline (Ray, torch) takes seconds: it is part of start-up.
                display.begin("start-up", "loading ClipForge")
                from pipelines.local.one_video import run_one_video

                result = run_one_video(source, out_dir, settings, options, progress=display)
                if embedded_running():
                    with display.step("stop Postgres", "the embedded database"):
                        stop_embedded()
        except ClipForgeError as exc:
            logging.getLogger("clipforge.cli").error("process failed: %s", exc)
            return 1, f"error: {_first_line(str(exc))} (details in {log_path})"
        except KeyboardInterrupt:
            return 130, "interrupted"
        except Exception as exc:  # a bug, not a user error: the traceback goes to the log
            if interrupted(exc):
                return 130, "interrupted"
            logging.getLogger("clipforge.cli").exception("process failed")
            return 1, f"error: unexpected {type(exc).__name__}: {exc} (details in {log_path})"
        finally:
            stop_embedded()  # stop what we started (if not yet); the data stays for a later run
    clips = result["clips"]
    for clip in clips:
        where = clip["files"].get("mp4") or "not rendered: " + _first_line(
            clip.get("export_error") or "no export", limit=100
        )
        span = f"{_clock(clip['start'])}-{_clock(clip['end'])}"
        print(f"  #{clip['rank']} {span}  score {clip['score']:.0f}  {where}  {clip['title']!r}")
    return 0, f"{len(clips)} clip(s) written to {out_dir}/ (open {out_dir}/report.html)"


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (terminal closed) unwind like Ctrl-C, so what we started is stopped."""
    import signal
    from types import FrameType

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


uploads_app = typer.Typer(help="Upload objects waiting for import.", no_args_is_help=True)
app.add_typer(uploads_app, name="uploads")


@uploads_app.command("sweep")
def uploads_sweep(
    grace_s: Annotated[
        float | None,
        typer.Option(help="Keep objects younger than this (default UPLOAD_ORPHAN_GRACE_S)."),
    ] = None,
) -> None:
    """Remove upload objects no video row needs (the API died before committing the row, or
    the video was imported); workers also do this every UPLOAD_SWEEP_INTERVAL_S."""
    from clipforge.db.pool import create_pool
    from clipforge.ops.uploads import sweep_orphan_uploads
    from clipforge.storage import create_store

    settings = _settings()
    url = _database_url(settings)
    with create_pool(settings, url, application_name="clipforge-uploads-sweep") as pool:
        report = sweep_orphan_uploads(
            pool,
            create_store(settings),
            grace_s=settings.upload_orphan_grace_s if grace_s is None else grace_s,
        )
    for key in report.removed:
        sys.stdout.write(key + "\n")
    typer.echo(
        f"removed {len(report.removed)} upload object(s); kept {report.kept} awaiting import"
        f" and {report.young} inside the grace period",
        err=True,
    )


cache_app = typer.Typer(help="The local data folder (DATA_DIR).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(
    database: Annotated[
        bool, typer.Option("--database", help="Also delete the embedded Postgres data.")
    ] = False,
) -> None:
    """Delete locally stored media (inputs and renders kept with --keep) under DATA_DIR."""
    import shutil

    settings = _settings()
    targets = [settings.storage_dir]
    if database:
        pgdata = settings.data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            typer.echo(
                f"error: the embedded Postgres in {pgdata} is running; stop it first", err=True
            )
            raise typer.Exit(2)
        targets.append(pgdata)
    freed = 0
    for target in targets:
        if target.exists():
            freed += sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            shutil.rmtree(target)
    typer.echo(f"freed {freed / 1e6:.1f} MB in {settings.data_dir}")


def main() -> None:
    """Console entry point: `app`, with usage errors as one `error:` line instead of a box."""
    # typer 0.29 vendors click: its parameter errors are these, not the `click` package's.
    from typer._click import exceptions as click

    try:
        code = app(standalone_mode=False)
    except click.UsageError as exc:
        message = exc.format_message().replace("Value error, ", "")
        if message:  # empty when a bare group printed its help
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            typer.echo(f"error: {message}{where}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
