"""Fitting a Serve config to a cluster's nodes: pure functions, no Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serve_apps.deployments.app import ClipForgeAppArgs, IngressArgs, ModelArgs
from serve_apps.deployments.fitting import (
    Demand,
    Node,
    ServeConfigDoesNotFit,
    cap_replicas,
    demands,
    fit,
    nodes_from_ray,
    problems,
)
from serve_apps.deployments.launch import DEFAULT_CONFIG, fit_applications, load_config

TWO_CPUS = [Node(cpus=2)]


def _default_args() -> ClipForgeAppArgs:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    return ClipForgeAppArgs.model_validate(raw["applications"][0]["args"])


def _cpus(args: ClipForgeAppArgs) -> dict[str, float]:
    return {d.section: d.num_cpus for d in demands(args)}


def test_demands_count_the_replicas_each_deployment_starts_with():
    args = ClipForgeAppArgs(
        ingress=IngressArgs(num_cpus=0.5, num_replicas=2),
        asr=ModelArgs(num_cpus=1, min_replicas=0, max_replicas=4),  # autoscaled: starts with 1
        highlight=ModelArgs(num_cpus=0.5, min_replicas=3, max_replicas=3),  # fixed size
        caption=ModelArgs(enabled=False),
    )
    assert demands(args) == [
        Demand("ingress", 2, 0.5),
        Demand("asr", 1, 1.0),
        Demand("highlight", 3, 0.5),
    ]


def test_default_config_is_scaled_to_leave_room_for_one_more_replica_of_each_model():
    args = _default_args()
    assert sum(d.replicas * d.num_cpus for d in demands(args)) == pytest.approx(2.25)
    # One more ASR (1), highlight (0.5) and caption (0.25) replica: 4 CPUs.
    assert sum(d.replicas * d.num_cpus for d in demands(args, headroom=1)) == pytest.approx(4)
    with pytest.raises(ServeConfigDoesNotFit):
        fit(args, TWO_CPUS, may_scale=False)

    fitted = fit(args, TWO_CPUS, may_scale=True)

    assert fitted.factor == pytest.approx(0.5)
    scaled = _cpus(fitted.args)
    # Same proportions, rounded down to Ray's 1/10000 unit.
    assert scaled == {"ingress": 0.25, "asr": 0.5, "highlight": 0.25, "caption": 0.125}
    assert problems(demands(fitted.args, headroom=1), TWO_CPUS) == []
    # Everything but the CPUs is untouched.
    assert fitted.args.asr.max_replicas == args.asr.max_replicas
    assert fitted.args.highlight.max_batch_size == args.highlight.max_batch_size
    # A machine that holds the start but not the headroom is scaled as well.
    assert fit(args, [Node(cpus=3)], may_scale=True).factor == pytest.approx(0.75)


def test_max_replicas_are_capped_at_what_the_nodes_can_place_shared_out_evenly():
    fitted = fit(_default_args(), TWO_CPUS, may_scale=True).args
    capped, changes = cap_replicas(fitted, TWO_CPUS)

    assert changes == {"asr": (4, 2), "highlight": (4, 2)}
    maxes = {"asr": 2, "highlight": 2, "caption": 2}
    assert {s: getattr(capped, s).max_replicas for s in maxes} == maxes
    # Every deployment at its maximum, all at once, fits: the autoscaler can place them.
    assert problems(demands(capped, replicas=maxes), TWO_CPUS) == []
    assert problems(demands(capped, replicas=maxes | {"asr": 3}), TWO_CPUS) != []
    # Plenty of room: nothing to cap. Starting replicas are never taken away.
    assert cap_replicas(fitted, [Node(cpus=8)]) == (fitted, {})
    tight = ClipForgeAppArgs(asr=ModelArgs(num_cpus=1, min_replicas=2, max_replicas=4))
    assert cap_replicas(tight, [Node(cpus=1)])[0].asr.max_replicas == 2


def test_a_config_that_fits_is_left_alone():
    args = _default_args()
    fitted = fit(args, [Node(cpus=8)], may_scale=True)
    assert fitted.factor == 1.0
    assert fitted.args == args


def test_an_explicit_config_that_does_not_fit_names_the_deployments_and_the_shortage():
    args = ClipForgeAppArgs(asr=ModelArgs(num_cpus=4), highlight=ModelArgs(num_cpus=1))
    with pytest.raises(ServeConfigDoesNotFit) as caught:
        fit(args, TWO_CPUS, may_scale=False)
    message = str(caught.value)
    assert "AsrModel (args.asr) asks for 4 CPUs per replica; no node has more than 2" in message
    assert "the replicas need 5.75 CPUs" in message
    assert "3.75 CPUs missing" in message


def test_a_gpu_request_on_a_cluster_without_gpus_is_refused_even_when_scaling():
    args = _default_args().model_copy(update={"asr": ModelArgs(num_cpus=1, num_gpus=1)})
    with pytest.raises(ServeConfigDoesNotFit) as caught:
        fit(args, TWO_CPUS, may_scale=True)
    message = str(caught.value)
    assert "AsrModel (args.asr) asks for 1 GPU per replica; the cluster has no GPU" in message
    assert "CPU" not in message.split("GPU per replica")[1]  # the CPUs were scaled to fit


def test_gpus_fit_on_a_node_that_has_them():
    args = ClipForgeAppArgs(asr=ModelArgs(num_cpus=1, num_gpus=1))
    assert fit(args, [Node(cpus=4, gpus=1)], may_scale=False).args == args
    with pytest.raises(ServeConfigDoesNotFit, match=r"no node has more than 0\.5"):
        fit(args, [Node(cpus=4, gpus=0.5)], may_scale=False)


def test_replicas_that_fit_in_total_but_not_on_any_node_are_refused():
    # 3 CPUs in all, but no node can hold two 0.8-CPU replicas next to the 1-CPU one.
    wanted = [Demand("asr", 1, 1.0), Demand("highlight", 2, 0.8)]
    nodes = [Node(cpus=1.5), Node(cpus=1.5)]
    found = problems(wanted, nodes)
    assert len(found) == 1
    assert "HighlightScorer (args.highlight)" in found[0]
    assert problems(wanted, [Node(cpus=1.8), Node(cpus=1.0)]) == []


def test_nodes_from_ray_keeps_the_alive_ones():
    records = [
        {"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
        {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}},
    ]
    assert nodes_from_ray(records) == [Node(cpus=2.0), Node(cpus=4.0, gpus=1.0)]


def test_fit_applications_names_the_application(tmp_path: Path):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["applications"][0]["args"]["caption"]["num_gpus"] = 2
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ServeConfigDoesNotFit, match=r"application 'clipforge': .*CaptionModel"):
        fit_applications(load_config(path), TWO_CPUS, may_scale=True)
    fitted = fit_applications(load_config(DEFAULT_CONFIG), TWO_CPUS, may_scale=True)
    assert [(a.name, a.route_prefix) for a in fitted] == [("clipforge", "/")]
    assert sum(d.replicas * d.num_cpus for d in demands(fitted[0].args)) <= 2
