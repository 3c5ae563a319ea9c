"""Does a Serve config fit the Ray cluster it is about to run on? Pure functions, no Ray calls.

Ray Serve does not refuse a replica that can never be scheduled: it logs "has N replicas that
have taken more than 30s to be scheduled" every 30 s, forever, and nothing answers. So
`clipforge serve` checks the replicas it needs at start-up (fixed sizes, and the initial
replicas of autoscaled deployments) against the nodes' CPUs and GPUs first:

* a config that fits runs as written;
* the default config on a Ray that `clipforge serve` started itself is scaled down: every
  deployment's `num_cpus` is multiplied by the same factor, so that the starting replicas plus
  one more of each autoscaled deployment fit (configs/serve.yaml starts with 2.25 CPUs and
  asks for 4 with that headroom; a small machine has 2). Scaled to fill the machine instead,
  the replicas the autoscaler adds under load could never be placed;
* anything else that does not fit (an explicit config, a shared cluster, GPUs that are not
  there) is refused with the deployments and the resources that are missing.

Capacity is the nodes' total, not what is free now: a busy cluster frees up, a missing GPU does
not appear. On a Ray that cannot add nodes (the one `clipforge serve` starts), `cap_replicas`
lowers each autoscaled deployment's `max_replicas` until all of them at their maximum fit, so
every replica the autoscaler asks for can be placed; a cluster with a node autoscaler
(KubeRay) keeps the config's maximums, since pending replicas make it add nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clipforge.errors import ConfigError
from serve_apps.deployments.app import ClipForgeAppArgs, ModelArgs

# Ray accounts fractional resources in units of 1/10000.
_RESOURCE_QUANTUM = 10_000
# Float sums of fractional requests must not fail on rounding noise.
_EPSILON = 1e-9

#: Serve deployment name of each `args` section (names as in the deployments' decorators).
DEPLOYMENT_NAMES = {
    "ingress": "ApiIngress",
    "asr": "AsrModel",
    "highlight": "HighlightScorer",
    "caption": "CaptionModel",
}


class ServeConfigDoesNotFit(ConfigError):
    """The replicas a config starts with can never be scheduled on this cluster."""


@dataclass(frozen=True, slots=True)
class Demand:
    """What one deployment needs to start: `replicas` x (`num_cpus`, `num_gpus`)."""

    section: str
    replicas: int
    num_cpus: float
    num_gpus: float = 0.0

    @property
    def label(self) -> str:
        """`AsrModel (args.asr)`: the Serve name and where the config sets it."""
        return f"{DEPLOYMENT_NAMES.get(self.section, self.section)} (args.{self.section})"


@dataclass(frozen=True, slots=True)
class Node:
    """Schedulable capacity of one alive Ray node."""

    cpus: float
    gpus: float = 0.0


def nodes_from_ray(ray_nodes: Iterable[Mapping[str, Any]]) -> list[Node]:
    """Alive nodes from the records of `ray.nodes()`."""
    return [
        Node(cpus=float(n["Resources"].get("CPU", 0)), gpus=float(n["Resources"].get("GPU", 0)))
        for n in ray_nodes
        if n.get("Alive")
    ]


def _start_replicas(args: ModelArgs) -> int:
    # Mirrors ModelArgs.options(): a fixed size, or the autoscaler's initial replicas.
    if args.min_replicas == args.max_replicas:
        return args.max_replicas
    return max(1, args.min_replicas)


def _models(args: ClipForgeAppArgs) -> list[tuple[str, ModelArgs]]:
    """The enabled model deployments, by `args` section."""
    found = [("asr", args.asr), ("highlight", args.highlight), ("caption", args.caption)]
    return [(section, model) for section, model in found if model.enabled]


def demands(
    args: ClipForgeAppArgs, *, headroom: int = 0, replicas: Mapping[str, int] | None = None
) -> list[Demand]:
    """The replicas each deployment of `args` starts with (disabled models need none), plus
    up to `headroom` more of each autoscaled one; `replicas` overrides the count by section."""
    found = [Demand("ingress", args.ingress.num_replicas, args.ingress.num_cpus)]
    for section, model in _models(args):
        count = min(_start_replicas(model) + headroom, model.max_replicas)
        count = (replicas or {}).get(section, count)
        found.append(Demand(section, count, model.num_cpus, model.num_gpus))
    return found


def _fmt(value: float) -> str:
    return f"{value:g}"


def _amount(value: float, resource: str) -> str:
    return f"{_fmt(value)} {resource}" + ("" if value == 1 else "s")


def _pack(demands: Sequence[Demand], nodes: Sequence[Node]) -> Demand | None:
    """First-fit decreasing placement of every replica; the first demand left over, if any.

    Ray's scheduler is not bound to find a packing either, but one that this cannot find is
    not worth starting: it would hang the same way on an unlucky order.
    """
    free = [[node.cpus, node.gpus] for node in nodes]
    replicas = sorted(
        (d for d in demands for _ in range(d.replicas)),
        key=lambda d: (d.num_gpus, d.num_cpus),
        reverse=True,
    )
    for replica in replicas:
        for room in free:
            if replica.num_cpus <= room[0] + _EPSILON and replica.num_gpus <= room[1] + _EPSILON:
                room[0] -= replica.num_cpus
                room[1] -= replica.num_gpus
                break
        else:
            return replica
    return None


def _shortage(demands: Sequence[Demand], resource: str, total: float) -> str | None:
    """The sentence for a cluster-wide shortage of `resource` ("CPU" or "GPU"), if any."""
    per_replica = {d: d.num_cpus if resource == "CPU" else d.num_gpus for d in demands}
    need = sum(d.replicas * amount for d, amount in per_replica.items())
    if need <= total + _EPSILON:
        return None
    parts = ", ".join(
        f"{d.label} {d.replicas} x {_fmt(amount)}" for d, amount in per_replica.items() if amount
    )
    return (
        f"the replicas need {_amount(need, resource)} ({parts}); the cluster has "
        f"{_fmt(total)}: {_amount(round(need - total, 4), resource)} missing"
    )


def problems(demands: Sequence[Demand], nodes: Sequence[Node]) -> list[str]:
    """Why `demands` cannot all be scheduled on `nodes`, one sentence each; empty if they can."""
    found: list[str] = []
    total_cpus = sum(n.cpus for n in nodes)
    total_gpus = sum(n.gpus for n in nodes)
    largest_cpus = max((n.cpus for n in nodes), default=0.0)
    largest_gpus = max((n.gpus for n in nodes), default=0.0)
    for d in demands:
        if d.num_gpus > largest_gpus + _EPSILON:
            where = (
                "the cluster has no GPU"
                if total_gpus == 0
                else f"no node has more than {_fmt(largest_gpus)}"
            )
            found.append(f"{d.label} asks for {_fmt(d.num_gpus)} GPU per replica; {where}")
        if d.num_cpus > largest_cpus + _EPSILON:
            found.append(
                f"{d.label} asks for {_fmt(d.num_cpus)} CPUs per replica; "
                f"no node has more than {_fmt(largest_cpus)}"
            )
    for resource, total in (("CPU", total_cpus), ("GPU", total_gpus)):
        if shortage := _shortage(demands, resource, total):
            found.append(shortage)
    if not found and (stuck := _pack(demands, nodes)) is not None:
        found.append(
            f"a replica of {stuck.label} ({_fmt(stuck.num_cpus)} CPUs, {_fmt(stuck.num_gpus)} "
            "GPUs) fits on no node once the others are placed"
        )
    return found


def cpu_scale(demands: Sequence[Demand], nodes: Sequence[Node]) -> float:
    """The factor that shrinks every `num_cpus` so the replicas' CPUs fit (1.0 if they do)."""
    need = sum(d.replicas * d.num_cpus for d in demands)
    have = sum(n.cpus for n in nodes)
    return 1.0 if need <= have + _EPSILON else have / need


def _scaled(value: float, factor: float) -> float:
    # Rounded down to Ray's resource unit so the scaled sum never exceeds the capacity.
    return max(1, math.floor(value * factor * _RESOURCE_QUANTUM)) / _RESOURCE_QUANTUM


def scale_cpus(args: ClipForgeAppArgs, factor: float) -> ClipForgeAppArgs:
    """`args` with every deployment's `num_cpus` multiplied by `factor`."""
    update: dict[str, Any] = {
        section: getattr(args, section).model_copy(
            update={"num_cpus": _scaled(getattr(args, section).num_cpus, factor)}
        )
        for section in DEPLOYMENT_NAMES
    }
    return args.model_copy(update=update)


@dataclass(frozen=True, slots=True)
class Fitted:
    """The arguments to deploy, and the factor their CPUs were scaled by (1.0: untouched)."""

    args: ClipForgeAppArgs
    factor: float = 1.0


def fit(args: ClipForgeAppArgs, nodes: Sequence[Node], *, may_scale: bool) -> Fitted:
    """The arguments to deploy on `nodes`, CPUs scaled down if `may_scale` and needed.

    Raises:
        ServeConfigDoesNotFit: naming every deployment and resource that is short.
    """
    wanted = demands(args)
    if may_scale:
        factor = cpu_scale(demands(args, headroom=1), nodes)
        scaled = scale_cpus(args, factor)
        if factor < 1.0 and not problems(demands(scaled, headroom=1), nodes):
            return Fitted(scaled, factor)
    if not problems(wanted, nodes):
        return Fitted(args)
    factor = cpu_scale(wanted, nodes)
    if may_scale and factor < 1.0:
        scaled = scale_cpus(args, factor)
        if not problems(demands(scaled), nodes):
            return Fitted(scaled, factor)
        wanted = demands(scaled)  # what is still missing after scaling, e.g. a GPU
    raise ServeConfigDoesNotFit(
        "the Serve config does not fit this Ray cluster: " + "; ".join(problems(wanted, nodes))
    )


def cap_replicas(
    args: ClipForgeAppArgs, nodes: Sequence[Node]
) -> tuple[ClipForgeAppArgs, dict[str, tuple[int, int]]]:
    """`args` with autoscaled `max_replicas` lowered until every deployment at its maximum
    can be placed on `nodes` together, and `{section: (asked, capped)}` for those lowered.

    The deployment with the most replicas above its start (on a tie, the larger one) gives up
    one replica at a time, so the room left is shared out evenly. Starting replicas are never taken away (if
    they do not fit, `fit` says so).
    """
    start = {section: _start_replicas(model) for section, model in _models(args)}
    most = {section: model.max_replicas for section, model in _models(args)}
    cpus = {section: model.num_cpus for section, model in _models(args)}
    while _pack(demands(args, replicas=most), nodes) is not None:
        above = [section for section in most if most[section] > start[section]]
        if not above:
            break
        largest = max(above, key=lambda section: (most[section] - start[section], cpus[section]))
        most[largest] -= 1
    capped = {
        section: (getattr(args, section).max_replicas, most[section])
        for section in most
        if most[section] < getattr(args, section).max_replicas
    }
    update: dict[str, Any] = {
        section: getattr(args, section).model_copy(update={"max_replicas": placed})
        for section, (_, placed) in capped.items()
    }
    return args.model_copy(update=update), capped
