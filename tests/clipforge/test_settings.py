"""Settings fail fast with a message naming the bad variable."""

from __future__ import annotations

import pytest

from clipforge.errors import ConfigError
from clipforge.settings import load_settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://root@localhost/db"}, "DATABASE_URL"),
        ({"DB_POOL_MAX_SIZE": "50"}, "DB_POOL_MAX_SIZE"),
        ({"REDIS_MAX_CONNECTIONS": "11"}, "REDIS_MAX_CONNECTIONS"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"CDN_BASE_URL": "cdn.example.com"}, "CDN_BASE_URL"),
        ({"QUEUE_LEASE_S": "10", "QUEUE_HEARTBEAT_S": "20"}, "QUEUE_HEARTBEAT_S"),
        ({"QUEUE_MAX_ATTEMPTS": "zero"}, "QUEUE_MAX_ATTEMPTS"),
        (
            {
                "ENVIRONMENT": "production",
                "DATABASE_URL": "postgresql://db/x",
                "S3_SECRET_ACCESS_KEY": "changeme",
            },
            "placeholder",
        ),
    ],
)
def test_invalid_values_are_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_dsns_are_normalised_and_backend_derived(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/db")
    monkeypatch.setenv("CDN_BASE_URL", "https://cdn.example.com/")
    monkeypatch.delenv("S3_BUCKET", raising=False)
    settings = load_settings()
    assert settings.database_url == "postgresql://u@h:5432/db"
    assert settings.cdn_base_url == "https://cdn.example.com"
    assert settings.storage_backend == "local"
    assert load_settings(s3_bucket="media").storage_backend == "s3"


def test_cli_reports_bad_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from clipforge.cli import app
    from clipforge.settings import get_settings

    monkeypatch.setenv("DB_POOL_MAX_SIZE", "500")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "migrate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "DB_POOL_MAX_SIZE" in result.output


def test_readme_lists_every_setting() -> None:
    """A setting nobody can find is a setting nobody can use: the README's table names each."""
    from pathlib import Path

    from clipforge.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []
