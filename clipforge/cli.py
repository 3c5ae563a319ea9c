"""The `clipforge` command line. Later issues add `process`, `worker`, `serve` and `api`."""

from __future__ import annotations

import sys

import typer

from clipforge.errors import ClipForgeError
from clipforge.settings import Settings, get_settings

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


if __name__ == "__main__":  # pragma: no cover
    app()
