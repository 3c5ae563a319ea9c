"""cluster/alertmanager routes every alert of cluster/prometheus/alerts.yml by severity.

amtool (Debian's prometheus-alertmanager) checks the config and resolves the receiver of each
rule's labels; a real Alertmanager then runs the config with the PagerDuty and Opsgenie URLs,
key files and wait times replaced (nothing else) and delivers to a local recorder, which shows
the keys are read from the files and that inhibited symptoms page nobody.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.conftest import CLUSTER
from tests.utils.servers import free_port, wait_for_port
from tests.utils.wait import wait_until

AM = CLUSTER / "alertmanager"
CONFIG = AM / "alertmanager.yml"
RECEIVER_BY_SEVERITY = {"critical": "pagerduty", "warning": "opsgenie"}
SECRET_DIR = "/etc/alertmanager/secrets/clipforge-alertmanager-keys"


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((CLUSTER / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def _amtool(amtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [amtool, *args], capture_output=True, text=True, timeout=30, check=False, cwd=AM
    )


def _local_copy(tmp_path: Path, config: dict[str, Any]) -> Path:
    """The config with its template glob pointing at the repository's template."""
    config["templates"] = [str(AM / "*.tmpl")]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_every_alert_has_a_routable_severity_and_a_service() -> None:
    rules = _rules()
    assert len(rules) >= 20
    for rule in rules:
        labels = rule["labels"]
        assert labels.get("severity") in RECEIVER_BY_SEVERITY, rule["alert"]
        # Static values: Alertmanager groups and inhibits by service.
        assert labels.get("service") and "{{" not in labels["service"], rule["alert"]


def test_runbook_links_of_the_alerts_exist() -> None:
    # Pages link docs/operations.md#<anchor> (clipforge.tmpl): each anchor must be there.
    text = (CLUSTER.parent / "docs" / "operations.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    anchors |= {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", text, re.M)
    }
    runbooks = {r["annotations"]["runbook"] for r in _rules() if "runbook" in r["annotations"]}
    assert len(runbooks) >= 5
    for runbook in runbooks:
        page, anchor = runbook.split("#")
        assert page == "docs/operations.md" and anchor in anchors, runbook
    assert "alerts-and-what-to-do" in anchors  # the template's default link


def test_check_config_accepts_the_config_and_its_template(amtool: str, tmp_path: Path) -> None:
    result = _amtool(amtool, "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    local = _amtool(amtool, "check-config", str(_local_copy(tmp_path, _config())))
    out = local.stdout + local.stderr
    assert local.returncode == 0 and "SUCCESS" in out and "1 templates" in out, out
    # A broken template fails the check: the check above did parse clipforge.tmpl.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "clipforge.tmpl").write_text('{{ define "x" }}{{ .Oops ')
    config = _config()
    config["templates"] = [str(broken / "*.tmpl")]
    (broken / "alertmanager.yml").write_text(yaml.safe_dump(config))
    assert _amtool(amtool, "check-config", str(broken / "alertmanager.yml")).returncode != 0


def test_each_alert_routes_to_its_severity_receiver(amtool: str) -> None:
    for rule in _rules():
        labels = {"alertname": rule["alert"], "system": "clipforge", **rule["labels"]}
        expected = RECEIVER_BY_SEVERITY[labels["severity"]]
        result = _amtool(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={expected}",
            *(f"{k}={v}" for k, v in labels.items()),
        )
        assert result.returncode == 0, (rule["alert"], result.stdout + result.stderr)
        assert result.stdout.strip() == expected, rule["alert"]


def test_an_alert_without_a_known_severity_still_reaches_a_person(amtool: str) -> None:
    for labels in (["alertname=New", "severity=info"], ["alertname=NoSeverity"]):
        result = _amtool(amtool, "config", "routes", "test", f"--config.file={CONFIG}", *labels)
        assert result.stdout.strip() == "opsgenie", labels


def test_keys_are_read_from_secret_files_only() -> None:
    config = _config()
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"pagerduty", "opsgenie"}
    for pd in receivers["pagerduty"]["pagerduty_configs"]:
        assert not {"routing_key", "service_key"} & set(pd)
        assert pd["routing_key_file"] == f"{SECRET_DIR}/pagerduty_routing_key"
    for og in receivers["opsgenie"]["opsgenie_configs"]:
        assert "api_key" not in og and "opsgenie_api_key" not in config["global"]
        assert og["api_key_file"] == f"{SECRET_DIR}/opsgenie_api_key"
    # compose mounts its secrets there, from the environment (no key file in the repo) ...
    compose = yaml.safe_load((CLUSTER / "compose.yaml").read_text())
    mounts = {s["source"]: s["target"] for s in compose["services"]["alertmanager"]["secrets"]}
    assert mounts == {
        "pagerduty_routing_key": f"{SECRET_DIR}/pagerduty_routing_key",
        "opsgenie_api_key": f"{SECRET_DIR}/opsgenie_api_key",
    }
    assert all("environment" in compose["secrets"][name] for name in mounts)
    # ... and the Prometheus Operator mounts spec.secrets at /etc/alertmanager/secrets/<name>/.
    resource = yaml.safe_load((AM / "kubernetes.yaml").read_text())
    assert resource["spec"]["secrets"] == [Path(SECRET_DIR).name]
    example = yaml.safe_load((AM / "secret.example.yaml").read_text())
    assert example["metadata"]["name"] == Path(SECRET_DIR).name
    assert set(example["stringData"]) == set(mounts)
    kustomization = yaml.safe_load((AM / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    files = kustomization["secretGenerator"][0]["files"]
    assert "alertmanager.yaml=alertmanager.yml" in files
    assert all((AM / f.split("=")[-1]).exists() for f in files)


class _Recorder:
    """A local stand-in for the PagerDuty Events API and the Opsgenie Alert API."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append((self.path, dict(self.headers), json.loads(body)))
                reply = b'{"status": "success", "result": "Request will be processed"}'
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def by_path(self, prefix: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, b) for p, h, b in list(self.requests) if p.startswith(prefix)]


@pytest.fixture()
def recorder() -> Iterator[_Recorder]:
    rec = _Recorder()
    thread = threading.Thread(target=rec.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.server.shutdown()
        rec.server.server_close()


def _test_config(tmp_path: Path, recorder_url: str) -> Path:
    """alertmanager.yml with local URLs, temporary key files and one-second waits."""
    config = _config()
    # No trailing newline: Alertmanager 0.25 sends the file's bytes as they are, and a newline
    # in the Opsgenie key is an invalid Authorization header (docs/operations.md says so).
    (tmp_path / "pd.key").write_text("pd-test-routing-key")
    (tmp_path / "og.key").write_text("og-test-api-key")
    config["global"]["opsgenie_api_url"] = f"{recorder_url}/opsgenie/"
    for receiver in config["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            pd["routing_key_file"] = str(tmp_path / "pd.key")
            pd["url"] = f"{recorder_url}/pagerduty"
        for og in receiver.get("opsgenie_configs", []):
            og["api_key_file"] = str(tmp_path / "og.key")
    for route in [config["route"], *config["route"]["routes"]]:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
    return _local_copy(tmp_path, config)


def _alert(name: str, **labels: str) -> dict[str, Any]:
    rule = next(r for r in _rules() if r["alert"] == name)
    return {
        "labels": {"alertname": name, "system": "clipforge", **rule["labels"], **labels},
        "annotations": {k: v for k, v in rule.get("annotations", {}).items() if "{{" not in v}
        | {"summary": f"{name} fired in the test"},
    }


def test_alertmanager_pages_by_severity_and_inhibits_symptoms(
    alertmanager_bin: str, recorder: _Recorder, tmp_path: Path
) -> None:
    config = _test_config(tmp_path, recorder.url)
    port = free_port()
    proc = subprocess.Popen(
        [
            alertmanager_bin,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout_s=20, proc=proc)
        base = f"http://127.0.0.1:{port}/api/v2"
        alerts = [
            _alert("PostgresUnreachable"),  # cause: pages
            _alert("ApiErrorRateHigh"),  # symptom of Postgres down: inhibited
            _alert("QueueJobsWaitingTooLong", kind="transcribe"),  # symptom: inhibited
            _alert("WorkerDown", job="clipforge-worker", instance="worker:9101"),  # pages
            _alert("ProcessRestarting", job="clipforge-worker", instance="worker:9101"),
            _alert("ServeReplicaRestarting", deployment="Detector"),  # warning: Opsgenie
        ]
        assert httpx.post(f"{base}/alerts", json=alerts, timeout=10).status_code == 200

        def paged() -> set[str]:
            return {b["payload"]["class"] for _, b in recorder.by_path("/pagerduty")}

        def ticketed() -> set[str]:
            return {b["details"]["alertname"] for _, b in recorder.by_path("/opsgenie/v2/alerts")}

        wait_until(
            lambda: paged() >= {"PostgresUnreachable", "WorkerDown"} and ticketed(),
            timeout_s=15,
            interval_s=0.2,
            what=lambda: (paged(), ticketed()),
        )
        time.sleep(1.5)  # one more group interval: an inhibited alert would have arrived by now
        assert paged() == {"PostgresUnreachable", "WorkerDown"}
        assert ticketed() == {"ServeReplicaRestarting"}

        for _, body in recorder.by_path("/pagerduty"):
            assert body["routing_key"] == "pd-test-routing-key"  # read from the key file
            assert body["event_action"] == "trigger"
            assert body["payload"]["severity"] == "critical"
            hrefs = [link["href"] for link in body["links"]]
            assert any("/d/clipforge-" in h for h in hrefs) and any(
                "/d/clipforge-logs" in h for h in hrefs
            )
            assert any("docs/operations.md#" in h for h in hrefs)
        (headers, body) = recorder.by_path("/opsgenie/v2/alerts")[0]
        assert headers["Authorization"] == "GenieKey og-test-api-key"
        assert body["priority"] == "P3" and "serve" in body["tags"]
        assert "/d/clipforge-models" in body["details"]["dashboard"]
        assert body["message"].startswith("[FIRING:1] ServeReplicaRestarting (serve)")

        state = {
            a["labels"]["alertname"]: a["status"]
            for a in httpx.get(f"{base}/alerts", timeout=10).json()
        }
        inhibited = {name for name, s in state.items() if s["inhibitedBy"]}
        assert inhibited == {"ApiErrorRateHigh", "QueueJobsWaitingTooLong", "ProcessRestarting"}
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
        if stderr.strip():
            print(stderr.decode(errors="replace")[-2000:])  # shown when the test fails
