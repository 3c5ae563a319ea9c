"""configs/serve.yaml and the RayService's serveConfigV2 pass Ray's Serve schema and agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve_apps.deployments.app import ClipForgeAppArgs
from tests.cluster.conftest import CLUSTER, REPO

SERVE_YAML = REPO / "configs" / "serve.yaml"
RAYSERVICE = CLUSTER / "kuberay" / "rayservice.yaml"


def _render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render", CLUSTER / "kuberay" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rayservice() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(RAYSERVICE.read_text())
    return doc


def _validate(config: dict[str, Any]) -> ServeDeploySchema:
    schema = ServeDeploySchema.model_validate(config)
    for app in schema.applications:
        ClipForgeAppArgs.model_validate(app.args or {})
    return schema


def test_both_configs_validate_with_rays_serve_schema() -> None:
    local = _validate(yaml.safe_load(SERVE_YAML.read_text()))
    deployed = _validate(yaml.safe_load(_rayservice()["spec"]["serveConfigV2"]))
    assert [a.name for a in local.applications] == [a.name for a in deployed.applications]
    for mine, theirs in zip(local.applications, deployed.applications, strict=True):
        assert (mine.import_path, mine.route_prefix) == (theirs.import_path, theirs.route_prefix)
    assert deployed.http_options.port == 8000  # the port KubeRay's serve Service targets


def test_serve_config_v2_is_rendered_from_configs_serve_yaml() -> None:
    render = _render()
    assert render.main(["--check"]) == 0, "run: python cluster/kuberay/render.py"
    embedded = yaml.safe_load(_rayservice()["spec"]["serveConfigV2"])
    assert embedded == render.rendered_config()


def test_overrides_change_only_what_they_name() -> None:
    render = _render()
    base = yaml.safe_load(SERVE_YAML.read_text())
    rendered = render.rendered_config()
    overrides = yaml.safe_load((CLUSTER / "kuberay" / "serve-overrides.yaml").read_text())
    touched = overrides["applications"]["clipforge"]["args"]
    args_base, args_new = base["applications"][0]["args"], rendered["applications"][0]["args"]
    for section, values in args_base.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if key not in touched.get(section, {}):
                assert args_new[section][key] == value, f"{section}.{key} drifted"
    assert args_new["asr"]["num_gpus"] == touched["asr"]["num_gpus"]


def test_override_of_unknown_application_is_refused(tmp_path: Path) -> None:
    render = _render()
    bad = tmp_path / "overrides.yaml"
    bad.write_text("applications:\n  nope:\n    args: {}\n")
    with pytest.raises(ValueError, match="unknown applications"):
        render.rendered_config(overrides=bad)


def test_gpu_worker_group_exists_for_gpu_replicas() -> None:
    groups = {
        g["groupName"]: g for g in _rayservice()["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    }
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"].endswith("-cuda")
