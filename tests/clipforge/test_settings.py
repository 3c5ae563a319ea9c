"""Settings fail fast with a message naming the bad variable."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from clipforge.errors import ConfigError
from clipforge.settings import Settings, load_settings


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


# Variables the README's table documents that a third-party library reads itself (the
# OpenTelemetry SDK); every other row must be a field of `Settings`.
_LIBRARY_VARIABLES = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
}


def _readme_settings_table() -> set[str]:
    """The variables named in the first column of the README's "Configuration" table."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "README.md has no Configuration table"
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_readme_settings_table_matches_the_settings_class() -> None:
    """A setting nobody can find is a setting nobody can use, and a documented variable that
    nothing reads is a trap: the README's table names every field and nothing else."""
    documented = _readme_settings_table()
    fields = {name.upper() for name in Settings.model_fields}
    assert sorted(fields - documented) == [], "settings missing from the README's table"
    assert sorted(documented - fields - _LIBRARY_VARIABLES) == [], "table rows that are no setting"


def _raw_environment_reads(root: Path) -> list[tuple[str, str]]:
    """(place, variable) of every `os.environ.get("X")`, `os.getenv("X")`, `os.environ["X"]`
    (read) and `"X" in os.environ` with a literal name, in the four source packages."""

    def environ(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    found: list[tuple[str, str]] = []
    for package in ("clipforge", "models", "pipelines", "serve_apps"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                key: ast.expr | None = None
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    owner, name = node.func.value, node.func.attr
                    if (environ(owner) and name == "get") or (
                        isinstance(owner, ast.Name) and owner.id == "os" and name == "getenv"
                    ):
                        key = node.args[0] if node.args else None
                elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                    key = node.slice if environ(node.value) else None
                elif isinstance(node, ast.Compare) and any(environ(c) for c in node.comparators):
                    key = node.left
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    found.append((f"{path.relative_to(root)}:{node.lineno}", key.value))
    return found


def test_our_variables_are_read_only_through_settings() -> None:
    """One owner per setting: a variable of ours (a Settings field, or any CLIPFORGE_*) read
    straight from the environment bypasses validation and the README's table. What is left
    are libraries' variables (OTEL_*, RAY_ADDRESS, PROMETHEUS_MULTIPROC_DIR, ...)."""
    ours = {name.upper() for name in Settings.model_fields}
    reads = _raw_environment_reads(Path(__file__).resolve().parents[2])
    assert reads, "the scan found no environment read at all: it is not looking"
    assert [(at, v) for at, v in reads if v in ours or v.startswith("CLIPFORGE_")] == []
