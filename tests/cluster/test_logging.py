"""Log shipping (Vector), Loki, Tempo and the Grafana data sources and logs dashboard.

No Vector, Loki, Tempo or Grafana binary installs from Debian or PyPI, so their configs are
checked structurally; the parsing itself is real: the VRL programs run in VRL's own compiler
and runtime (pyVRL, the Rust crate Vector embeds) on lines written by clipforge.logging.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import pyvrl
import yaml
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from clipforge.logging import JsonFormatter, job_context, request_context
from tests.cluster.conftest import CLUSTER

LOGGING = CLUSTER / "logging"
VECTOR = LOGGING / "vector"
GRAFANA = CLUSTER / "grafana"
LABELS = {"service", "level", "environment"}
LEVELS = {"debug", "info", "warning", "error", "critical", "unknown"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _program(name: str) -> Any:
    # pyVRL returns the program's last expression; Vector keeps the event (`.`) itself.
    return pyvrl.Transform((VECTOR / name).read_text() + "\n.")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _json_line(msg: str, **extra: Any) -> str:
    """A log line exactly as the services write it."""
    record = logging.LogRecord("clipforge.test", logging.WARNING, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return JsonFormatter().format(record)


def _traced_line(msg: str) -> tuple[str, str]:
    """A line written inside an OpenTelemetry span (tracing on), and the span's trace id."""
    tracer = TracerProvider().get_tracer("tests.cluster.test_logging")
    with tracer.start_as_current_span("request") as span:
        line = _json_line(msg)
    return line, trace.format_trace_id(span.get_span_context().trace_id)


def _ship(message: str, compose_service: str = "worker") -> dict[str, Any]:
    """A Docker log event through docker.vrl and clipforge.vrl, as compose's Vector runs them."""
    event = {
        "message": message,
        "container_name": f"clipforge-{compose_service}-1",
        "label": {
            "com.docker.compose.project": "clipforge",
            "com.docker.compose.service": compose_service,
        },
        "stream": "stderr",
        "source_type": "docker_logs",
        "host": "laptop",
    }
    result: dict[str, Any] = _program("clipforge.vrl").remap(_program("docker.vrl").remap(event))
    return result


def test_json_lines_keep_every_field_and_get_bounded_labels() -> None:
    with request_context("req-123"), job_context(42):
        line, trace_id = _traced_line("job attempt failed")
    entry = _ship(line)
    assert entry["trace_id"] == trace_id and len(entry["span_id"]) == 16
    assert {k: entry[k] for k in LABELS} == {
        "service": "worker",
        "level": "warning",
        "environment": "development",
    }
    original = json.loads(line)
    assert {k: entry[k] for k in original} == original  # request_id, job_id, trace_id, ...
    assert entry["instance"] == "clipforge-worker-1"
    assert "label" not in entry and "source_type" not in entry  # Docker metadata dropped


def test_ray_prefixed_coloured_and_deduplicated_lines_are_parsed() -> None:
    line = _json_line("stage batch ran", trace_id=TRACE_ID)
    raw = f"\x1b[36m(TranscribeActor pid=4242, ip=10.0.0.7)\x1b[0m {line} [repeated 3x across cluster]"
    entry = _ship(raw, "ray-head")
    assert entry["service"] == "serve"
    assert entry["trace_id"] == TRACE_ID and entry["msg"] == "stage batch ran"
    assert entry["ray_source"] == "TranscribeActor pid=4242, ip=10.0.0.7"
    assert entry["repeated"] == 3


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("2026-12-01 10:00:00,000 INFO worker.py:1 -- Connecting to existing Ray cluster", "info"),
        ("(raylet) WARN memory pressure", "warning"),
        ("Traceback (most recent call last):", "error"),
        ("FATAL: the end", "critical"),
        ("no level word here", "info"),
        ('{"level": "exception", "msg": "x"}', "critical"),
        ('{"level": "verbose", "msg": "x"}', "unknown"),
        ("[1, 2, 3]", "info"),  # JSON, but not an object: kept as text
    ],
)
def test_other_lines_become_json_with_a_known_level(message: str, level: str) -> None:
    entry = _ship(message)
    assert entry["level"] == level and entry["level"] in LEVELS
    assert "msg" in entry


def test_compose_containers_other_than_clipforge_processes_are_dropped() -> None:
    compose = _yaml(CLUSTER / "compose.yaml")
    shipped = {}
    for name in compose["services"]:
        try:
            shipped[name] = _ship(_json_line("hello"), name)["service"]
        except ValueError as exc:  # the program aborts: remap drops the event (drop_on_abort)
            assert "aborted" in str(exc)
    assert shipped == {"api": "api", "api-2": "api", "worker": "worker", "ray-head": "serve"}


def _pod_templates() -> list[dict[str, Any]]:
    """Labels of every pod template in cluster/kuberay."""
    out = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "template" in node and isinstance(node["template"], dict):
                labels = node["template"].get("metadata", {}).get("labels")
                if labels:
                    out.append(labels)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((CLUSTER / "kuberay").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            walk(doc)
    return out


def test_every_clipforge_pod_of_kubernetes_is_shipped_with_a_service() -> None:
    program = _program("kubernetes.vrl")
    templates = _pod_templates()
    assert len(templates) >= 5
    services = set()
    for labels in templates:
        event = {"message": "x", "kubernetes": {"pod_labels": labels, "pod_name": "p-0"}}
        services.add(program.remap(event)["service"])
    assert services == {"api", "serve", "worker", "backfill"}
    # The RayJobs' submitter pods (K8sJobMode) carry the driver's output; other pods drop.
    submitter = {"message": "x", "kubernetes": {"pod_labels": {"job-name": "clipforge-worker"}}}
    assert program.remap(submitter)["service"] == "worker"
    with pytest.raises(ValueError, match="aborted"):
        program.remap({"message": "x", "kubernetes": {"pod_labels": {"app": "postgres"}}})


@pytest.mark.parametrize("config", ["compose.yaml", "kubernetes.yaml"])
def test_vector_config_is_wired_and_labels_are_low_cardinality(config: str) -> None:
    conf = _yaml(VECTOR / config)
    components = {**conf["sources"], **conf["transforms"]}
    for name, component in {**conf["transforms"], **conf["sinks"]}.items():
        assert component["inputs"] and set(component["inputs"]) <= set(components), name
    for transform in conf["transforms"].values():
        assert transform["type"] == "remap"
        mounted = Path(transform["file"])
        assert mounted.parent == Path("/etc/vector") and (VECTOR / mounted.name).exists()
        pyvrl.Transform((VECTOR / mounted.name).read_text())  # compiles
    (sink,) = conf["sinks"].values()
    assert sink["type"] == "loki" and sink["encoding"]["codec"] == "json"
    assert sink["endpoint"] == "http://loki:3100"
    # Only the three labels, each from a field the programs set to a bounded set of values.
    assert sink["labels"] == {name: "{{ " + name + " }}" for name in LABELS}
    assert sink["remove_label_fields"] is True


def test_compose_runs_vector_loki_and_tempo_with_these_files() -> None:
    services = _yaml(CLUSTER / "compose.yaml")["services"]
    vector = services["vector"]
    assert vector["command"] == ["--config", "/etc/vector/compose.yaml"]
    assert "./logging/vector:/etc/vector:ro" in vector["volumes"]
    assert any(v.startswith("/var/run/docker.sock:") for v in vector["volumes"])
    assert "-config.file=/etc/loki/loki.yaml" in services["loki"]["command"]
    assert "./logging/loki/loki.yaml:/etc/loki/loki.yaml:ro" in services["loki"]["volumes"]
    assert "-config.file=/etc/tempo/tempo.yaml" in services["tempo"]["command"]
    assert "./logging/tempo/tempo.yaml:/etc/tempo/tempo.yaml:ro" in services["tempo"]["volumes"]
    assert {"4317:4317", "4318:4318", "3200:3200"} <= set(services["tempo"]["ports"])


def test_loki_and_tempo_configs() -> None:
    loki = _yaml(LOGGING / "loki" / "loki.yaml")
    (schema,) = loki["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert loki["server"]["http_listen_port"] == 3100
    assert loki["compactor"]["retention_enabled"] and loki["limits_config"]["retention_period"]
    assert loki["analytics"]["reporting_enabled"] is False
    tempo = _yaml(LOGGING / "tempo" / "tempo.yaml")
    protocols = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    # Tempo's default is localhost only: other containers could not send a span.
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert tempo["server"]["http_listen_port"] == 3200
    assert tempo["usage_report"]["reporting_enabled"] is False
    # The services export to Tempo's OTLP/HTTP port, in compose and on Kubernetes.
    compose_env = _yaml(CLUSTER / "compose.yaml")["x-clipforge-env"]
    k8s_env = _yaml(CLUSTER / "kuberay" / "config.yaml")["data"]
    for env in (compose_env, k8s_env):
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://tempo:4318"


def _datasources() -> list[dict[str, Any]]:
    out = []
    for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yaml")):
        out.extend(_yaml(path)["datasources"])
    return out


def _k8s_datasources() -> list[dict[str, Any]]:
    config_map = _yaml(LOGGING / "grafana-datasources.yaml")
    assert config_map["metadata"]["labels"]["grafana_datasource"] == "1"
    (text,) = config_map["data"].values()
    datasources: list[dict[str, Any]] = yaml.safe_load(text)["datasources"]
    return datasources


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def _uids_used(node: Any) -> set[str]:
    """Every datasource uid a dashboard refers to (panels and targets)."""
    found: set[str] = set()
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            found.add(ds["uid"])
        for value in node.values():
            found |= _uids_used(value)
    elif isinstance(node, list):
        for value in node:
            found |= _uids_used(value)
    return found


def test_datasources_link_logs_and_traces_and_cover_every_dashboard() -> None:
    datasources = {d["uid"]: d for d in _datasources()}
    assert {"clipforge-prometheus", "clipforge-loki", "clipforge-tempo"} <= set(datasources)
    for name, dashboard in _dashboards().items():
        assert _uids_used(dashboard) <= set(datasources), name
    loki, tempo = datasources["clipforge-loki"], datasources["clipforge-tempo"]
    fields = {f["name"]: f for f in loki["jsonData"]["derivedFields"]}
    assert fields["trace_id"]["datasourceUid"] == "clipforge-tempo"
    links = tempo["jsonData"]["tracesToLogsV2"]
    assert links["datasourceUid"] == "clipforge-loki"
    assert tempo["jsonData"]["lokiSearch"]["datasourceUid"] == "clipforge-loki"
    # Grafana expands $VAR in provisioning files: its own ${__...} variables need `$$`.
    for text in (
        links["query"],
        *(f["url"] for f in fields.values()),
    ):
        assert re.findall(r"(?<!\$)\$\{__", text) == [], text
    # The derived fields find the ids in a line as the services write it (Grafana uses the
    # regex as a JavaScript RegExp; these patterns mean the same in Python).
    with request_context("0f8e6c1e-req"):
        line, trace_id = _traced_line("boom")
    assert re.search(fields["trace_id"]["matcherRegex"], line)[1] == trace_id  # type: ignore[index]
    assert re.search(fields["request_id"]["matcherRegex"], line)[1] == "0f8e6c1e-req"  # type: ignore[index]
    # Trace -> logs queries Loki by the trace id in the line, never by a label.
    assert "trace_id=" not in links["query"].split("}")[0]


def test_kubernetes_datasources_match_compose_except_urls() -> None:
    def strip(ds: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ds.items() if k != "url"}

    compose = {d["uid"]: strip(d) for d in _datasources()}
    k8s = {d["uid"]: strip(d) for d in _k8s_datasources()}
    assert k8s == compose


def test_logs_dashboard_filters_by_ids_in_the_line_and_links_them() -> None:
    dashboards = _dashboards()
    logs = dashboards["clipforge-logs"]
    variables = {v["name"]: v for v in logs["templating"]["list"]}
    assert {"service", "level", "request_id", "trace_id", "video_id"} <= set(variables)
    loki_exprs = [
        t["expr"] for p in logs["panels"] for t in p["targets"] if t["datasource"]["type"] == "loki"
    ]
    assert loki_exprs
    for expr in loki_exprs:
        selector = expr[expr.index("{") : expr.index("}") + 1]
        assert set(re.findall(r"(\w+)\s*=~?", selector)) <= LABELS, expr  # ids are no labels
        for name in ("request_id", "trace_id", "video_id"):
            assert f'|= "${name}"' in expr, (name, expr)
    trace = next(p for p in logs["panels"] if p["type"] == "traces")
    assert trace["targets"][0]["query"] == "$trace_id"
    table = next(p for p in logs["panels"] if p["type"] == "table")
    links = {
        o["matcher"]["options"]: o["properties"][0]["value"][0]["url"]
        for o in table["fieldConfig"]["overrides"]
    }
    for name in ("request_id", "trace_id", "video_id"):
        assert links[name].startswith(f"/d/{logs['uid']}/") and f"var-{name}=" in links[name]
    # The metric dashboards link their error panels to these logs.
    for name in ("clipforge-api", "clipforge-pipeline", "clipforge-models"):
        urls = [
            link["url"]
            for p in dashboards[name]["panels"]
            for link in p["fieldConfig"]["defaults"].get("links", [])
        ]
        assert urls and all(u.startswith(f"/d/{logs['uid']}/") for u in urls), name
        assert dashboards[name]["links"][0]["url"].startswith(f"/d/{logs['uid']}")
