"""compose.yaml and the Kubernetes manifests parse, name real settings, and agree with the code
(ports, commands, health endpoints) and with the Prometheus job names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from clipforge.settings import Settings
from pipelines.batch.backfill import main as backfill_main
from tests.cluster.conftest import CLUSTER, REPO

KUBERAY = CLUSTER / "kuberay"
SETTINGS = {name.upper() for name in Settings.model_fields}
# Read by libraries rather than clipforge.settings (Hugging Face offline switches, Ray).
EXTERNAL_ENV = {
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "RAY_ADDRESS", "HEALTHCHECK_URL",
    "PROMETHEUS_MULTIPROC_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
}  # fmt: skip


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _all_k8s() -> list[dict[str, Any]]:
    # serve-overrides.yaml (render.py input) and kustomization.yaml are not cluster objects.
    return [d for p in sorted(KUBERAY.glob("*.yaml")) for d in _docs(p) if "metadata" in d]


def _by(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _all_k8s() if d["kind"] == kind}


def _job_names() -> set[str]:
    config = yaml.safe_load((CLUSTER / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"] for job in config["scrape_configs"]}


def test_compose_services_env_and_ports() -> None:
    compose = yaml.safe_load((CLUSTER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres", "redis", "minio", "minio-init", "migrate",
        "ray-head", "worker", "api", "api-2", "tls-init", "lb", "prometheus", "grafana",
        "alertmanager", "loki", "vector", "tempo-init", "tempo",
    }  # fmt: skip
    env = compose["x-clipforge-env"]
    assert {"DATABASE_URL", "REDIS_URL", "S3_BUCKET", "S3_ENDPOINT_URL", "CDN_BASE_URL"} <= set(env)
    for name in ("migrate", "ray-head", "worker", "api"):
        names = set(services[name]["environment"])
        assert names <= SETTINGS | EXTERNAL_ENV, names - SETTINGS - EXTERNAL_ENV
        assert services[name]["build"]["dockerfile"] == "cluster/docker/Dockerfile.cpu"
    Settings(**{k.lower(): v for k, v in env.items()})  # the values themselves validate
    targets = {
        t
        for job in yaml.safe_load((CLUSTER / "prometheus" / "prometheus.yml").read_text())[
            "scrape_configs"
        ]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    assert "--port 8080" in " ".join(services["api"]["command"]) and "api:8080" in targets
    assert "--metrics-port 9101" in " ".join(services["worker"]["command"])
    assert {"worker:9101", "ray-head:8080", "worker:8080"} <= targets
    for name in ("prometheus", "grafana", "alertmanager", "loki", "vector", "tempo"):
        for volume in services[name]["volumes"]:
            if volume.startswith("./"):  # bind mounts of repository files
                assert (CLUSTER / volume.split(":")[0]).exists(), volume


def test_kubernetes_kinds_and_kustomization() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in _all_k8s()}
    assert {
        ("RayService", "clipforge-serve"),
        ("RayJob", "clipforge-worker"),
        ("RayJob", "clipforge-backfill-detect"),
        ("Deployment", "clipforge-api"),
        ("HorizontalPodAutoscaler", "clipforge-api"),
        ("PodDisruptionBudget", "clipforge-api"),
        ("PodDisruptionBudget", "clipforge-serve-workers"),
        ("ConfigMap", "clipforge-config"),
        ("Secret", "clipforge-secrets"),
    } <= kinds
    listed = yaml.safe_load((KUBERAY / "kustomization.yaml").read_text())["resources"]
    assert all((KUBERAY / name).exists() for name in listed)
    assert "secret.example.yaml" not in listed


def test_config_and_secret_name_real_settings() -> None:
    config = _by("ConfigMap")["clipforge-config"]["data"]
    secret = _by("Secret")["clipforge-secrets"]["stringData"]
    assert set(config) | set(secret) <= SETTINGS | EXTERNAL_ENV
    assert {"DATABASE_URL", "REDIS_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"} == set(secret)
    assert {"S3_BUCKET", "CDN_BASE_URL", "ENVIRONMENT"} <= set(config)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a Deployment, RayService or RayJob."""
    spec = doc["spec"]
    if doc["kind"] == "Deployment":
        return list(spec["template"]["spec"]["containers"])
    cluster = spec.get("rayClusterConfig") or spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_every_clipforge_container_reads_config_and_secret() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    ray_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("ray["))
    for doc in _all_k8s():
        if doc["kind"] not in ("Deployment", "RayService", "RayJob"):
            continue
        spec = doc["spec"]
        cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec")
        if cluster is not None:
            assert ray_pin.endswith("==" + cluster["rayVersion"])
        for container in _containers(doc):
            refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
            assert refs == {"clipforge-config", "clipforge-secrets"}
            assert re.fullmatch(
                r"ghcr\.io/clipforge/clipforge:[\d.]+-(cpu|cuda)", container["image"]
            )


def test_api_deployment_probes_ports_and_selectors() -> None:
    api = _by("Deployment")["clipforge-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[command.index("--port") + 1] == "8080"
    if "--workers" in command:  # several processes: /metrics must add them up
        assert {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/tmp/clipforge-metrics"} in container[
            "env"
        ]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"]["matchLabels"] == labels
    assert _by("PodDisruptionBudget")["clipforge-api"]["spec"]["selector"]["matchLabels"] == labels
    hpa = _by("HorizontalPodAutoscaler")["clipforge-api"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "clipforge-api",
    }
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]


def test_worker_and_backfill_rayjobs() -> None:
    jobs = _by("RayJob")
    worker = jobs["clipforge-worker"]
    assert worker["spec"]["entrypoint"].startswith("clipforge worker ")
    assert "--metrics-port 9101" in worker["spec"]["entrypoint"]
    head = worker["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in head["spec"]["containers"][0]["ports"]}
    assert ports["worker-metrics"] == 9101 and ports["metrics"] == 8080
    assert head["metadata"]["labels"]["app.kubernetes.io/component"] == "queue-worker"
    backfill = jobs["clipforge-backfill-detect"]["spec"]["entrypoint"].split()
    assert backfill[:3] == ["python", "-m", "pipelines.batch.backfill"]
    assert (REPO / "configs" / Path(backfill[backfill.index("--config") + 1]).name).exists()
    try:  # the arguments parse with the backfill's own parser (--help exits before any work)
        backfill_main([*backfill[3:], "--help"])
    except SystemExit as exc:
        assert exc.code == 0


def test_pod_monitors_use_the_prometheus_job_names() -> None:
    monitors = _by("PodMonitor")
    jobs = {
        relabel["replacement"]
        for m in monitors.values()
        for endpoint in m["spec"]["podMetricsEndpoints"]
        for relabel in endpoint["relabelings"]
        if relabel.get("targetLabel") == "job"
    }
    assert jobs == _job_names() == {"clipforge-api", "clipforge-worker", "ray"}


def test_ray_pods_have_shm_and_workers_leave_cleanly() -> None:
    for name, job in _by("RayJob").items():
        cluster = job["spec"]["rayClusterSpec"]
        groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
        for group in groups:
            pod = group["template"]["spec"]
            shm = {v["name"] for v in pod["volumes"] if v.get("emptyDir", {}).get("medium")}
            mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
            assert mounts["/dev/shm"] in shm, name
        for group in cluster["workerGroupSpecs"]:
            hook = group["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
            assert "ray stop" in " ".join(hook["exec"]["command"]), name
    backfill = _by("RayJob")["clipforge-backfill-detect"]
    args = backfill["spec"]["entrypoint"].split()
    head = backfill["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    scorer = next(v for v in head["volumes"] if "configMap" in v)
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == scorer["name"])
    assert args[args.index("--scorer-config") + 1].startswith(mount["mountPath"] + "/")


def _kustomized(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A kustomization of cluster/ and the objects of the resources it lists."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = [d for name in kustomization["resources"] for d in _docs(folder / name)]
    for generator in kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    ):
        for entry in generator["files"]:
            assert (folder / entry.split("=")[-1]).exists(), entry
    return kustomization, docs


def test_logging_and_alerting_kustomizations() -> None:
    logging_k, logging_docs = _kustomized(CLUSTER / "logging")
    alerting_k, alerting_docs = _kustomized(CLUSTER / "alertmanager")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in logging_docs + alerting_docs}
    assert {
        ("DaemonSet", "clipforge-vector"),
        ("ClusterRole", "clipforge-vector"),
        ("StatefulSet", "loki"),
        ("Service", "loki"),
        ("StatefulSet", "tempo"),
        ("Service", "tempo"),
        ("ConfigMap", "clipforge-grafana-datasources"),
        ("Alertmanager", "clipforge"),
    } <= kinds
    assert logging_k["namespace"] == alerting_k["namespace"]
    generated = {g["name"] for g in logging_k["configMapGenerator"]}
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in logging_docs}
    binding = by_kind[("ClusterRoleBinding", "clipforge-vector")]
    assert binding["subjects"][0]["namespace"] == logging_k["namespace"]
    for kind, name in [("DaemonSet", "clipforge-vector"), ("StatefulSet", "loki"),
                       ("StatefulSet", "tempo")]:  # fmt: skip
        pod = by_kind[(kind, name)]["spec"]["template"]
        assert (
            by_kind[(kind, name)]["spec"]["selector"]["matchLabels"].items()
            <= pod["metadata"]["labels"].items()
        )
        container = pod["spec"]["containers"][0]
        config = next(v for v in pod["spec"]["volumes"] if "configMap" in v)
        assert config["configMap"]["name"] in generated
        mount = next(m for m in container["volumeMounts"] if m["name"] == config["name"])
        config_arg = next(a for a in container["args"] if "/etc/" in a)
        assert config_arg.split("=")[-1].startswith(mount["mountPath"] + "/"), config_arg
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref:  # the ClipForge ConfigMap of cluster/kuberay
                assert ref["key"] in _by("ConfigMap")[ref["name"]]["data"]
        if kind == "DaemonSet":  # Vector's data_dir is writable and not inside a read-only mount
            vector = yaml.safe_load(
                (CLUSTER / "logging" / "vector" / "kubernetes.yaml").read_text()
            )
            mounts = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
            assert mounts[vector["data_dir"]] is False
            assert not any(
                ro and vector["data_dir"].startswith(path.rstrip("/") + "/")
                for path, ro in mounts.items()
            )
        if kind == "StatefulSet":
            service = by_kind[("Service", name)]
            names = {p["name"] for p in container["ports"]}
            assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
            assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
