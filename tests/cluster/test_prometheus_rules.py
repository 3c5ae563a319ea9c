"""promtool accepts the Prometheus config and rules, and the rules' unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cluster.conftest import CLUSTER

PROM = CLUSTER / "prometheus"


def _promtool(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=PROM, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_config_is_valid(promtool: str) -> None:
    out = _promtool(promtool, "check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_rules_are_valid(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", "alerts.yml")
    assert "21 rules found" in out


def test_queue_age_and_5xx_alerts_fire_on_synthetic_series(promtool: str) -> None:
    _promtool(promtool, "test", "rules", "alerts_test.yml")


def test_rule_test_catches_a_broken_alert(promtool: str, tmp_path: Path) -> None:
    # The unit tests must be able to fail: raise the 5xx threshold and they do.
    (tmp_path / "alerts.yml").write_text(
        (PROM / "alerts.yml").read_text().replace("> 0.02", "> 0.5")
    )
    (tmp_path / "alerts_test.yml").write_text((PROM / "alerts_test.yml").read_text())
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ApiErrorRateHigh" in result.stdout + result.stderr
