"""Typed application builder: `serve run configs/serve.yaml` validates `args` against
`ClipForgeAppArgs` before anything is deployed.

Per-deployment resources, replica counts and autoscaling, and the batching settings
(through `user_config`, changeable in place) all come from these arguments. With
`min_replicas == max_replicas` a deployment has a fixed size; otherwise it autoscales on
ongoing requests per replica.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray.serve import Application
from ray.serve.deployment import Deployment

from clipforge.settings import load_settings
from serve_apps.deployments.asr import AsrDeployment
from serve_apps.deployments.caption import CaptionDeployment
from serve_apps.deployments.highlight import HighlightDeployment
from serve_apps.deployments.ingress import ApiIngress

# The decorators return Deployments; their type stubs say the classes come back unchanged.
ASR = cast(Deployment, AsrDeployment)
HIGHLIGHT = cast(Deployment, HighlightDeployment)
CAPTION = cast(Deployment, CaptionDeployment)
INGRESS = cast(Deployment, ApiIngress)


# Set in every model replica's process before its math libraries load. OpenMP threads
# (torch's, CTranslate2's) spin between parallel regions by default; on cores shared with
# other replicas, the proxy and other work, a spinning thread holds a core its partner needs,
# and a replica with 2 torch threads scored a 5-window request in ~3 s instead of ~50 ms at
# load average 65 on 2 cores. PASSIVE lets waiting threads sleep (docs/capacity.md).
REPLICA_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelArgs(_Args):
    """Resources, scaling and batching of one model deployment."""

    enabled: bool = Field(default=True, description="Deploy it (its endpoint answers 503 if not).")
    num_cpus: float = Field(
        default=0.5, gt=0, le=64, description="CPUs per replica (fractional ok)."
    )
    num_gpus: float = Field(default=0, ge=0, le=8, description="GPUs per replica.")
    num_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Math threads per replica (torch, CTranslate2); default num_cpus rounded "
        "down, at least 1. More lets a replica use its node's idle cores; a fractional "
        "num_cpus (small machines, fitted configs) otherwise leaves it one thread.",
    )
    min_replicas: int = Field(default=1, ge=0, le=100, description="Fewest replicas.")
    max_replicas: int = Field(default=1, ge=1, le=100, description="Most replicas.")
    target_ongoing_requests: float = Field(
        default=4, gt=0, description="Autoscaling target of in-flight requests per replica."
    )
    upscale_delay_s: float = Field(
        default=5, ge=0, description="Load must last this long to scale up."
    )
    downscale_delay_s: float = Field(default=120, ge=0, description="Idle this long to scale down.")
    # Ray warns (and will refuse) a window not longer than its 10 s metrics interval.
    look_back_period_s: float = Field(
        default=30, gt=10, description="Window of the load average (over 10 s)."
    )
    max_ongoing_requests: int = Field(
        default=32, ge=1, description="Requests a replica holds at once (>= max_batch_size)."
    )
    max_batch_size: int = Field(default=8, ge=1, le=256, description="Requests per batch.")
    batch_wait_timeout_s: float = Field(
        default=0.02,
        ge=0,
        le=5,
        description="Latency budget: longest a request waits for companions.",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelArgs:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError("max_ongoing_requests must be at least max_batch_size")
        return self

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `Deployment.options`."""
        opts: dict[str, Any] = {
            "ray_actor_options": {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "runtime_env": {"env_vars": dict(REPLICA_ENV)},
            },
            "max_ongoing_requests": self.max_ongoing_requests,
            "user_config": {
                "max_batch_size": self.max_batch_size,
                "batch_wait_timeout_s": self.batch_wait_timeout_s,
            },
        }
        if self.min_replicas == self.max_replicas:
            opts["num_replicas"] = self.max_replicas
        else:
            opts["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(1, self.min_replicas),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s,
                "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": self.look_back_period_s,
            }
        return opts


class IngressArgs(_Args):
    """Resources of the API ingress."""

    num_cpus: float = Field(default=0.5, gt=0, le=64, description="CPUs per replica.")
    num_replicas: int = Field(default=1, ge=1, le=100, description="Replicas.")
    max_ongoing_requests: int = Field(default=256, ge=1, description="Requests per replica.")


class ClipForgeAppArgs(_Args):
    """Arguments of the whole application (the `args:` of configs/serve.yaml)."""

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of ClipForge settings (field names of clipforge.settings."
        "Settings); everything else comes from the replicas' environment.",
    )
    redis_prefix: str = Field(
        default="cf:", min_length=1, max_length=50, description="Redis key prefix."
    )
    ingress: IngressArgs = Field(default_factory=IngressArgs, description="The API ingress.")
    asr: ModelArgs = Field(default_factory=ModelArgs, description="Speech recognition.")
    highlight: ModelArgs = Field(
        default_factory=lambda: ModelArgs(num_cpus=0.25), description="Highlight scoring."
    )
    caption: ModelArgs = Field(
        default_factory=lambda: ModelArgs(num_cpus=0.25), description="Captions and titles."
    )

    @model_validator(mode="after")
    def _settings_valid(self) -> ClipForgeAppArgs:
        # Fail at build time (in `serve run`), not in every replica after scheduling.
        load_settings(**self.settings)
        return self


def _model(deployment: Deployment, args: ModelArgs, settings: dict[str, Any]) -> Application | None:
    if not args.enabled:
        return None
    # The replicas size their math thread pools from this second argument (`thread_count`).
    threads = float(args.num_threads) if args.num_threads else args.num_cpus
    return deployment.options(**args.options()).bind(settings, threads)


def build_app(args: ClipForgeAppArgs) -> Application:
    """The application graph: model deployments bound into the ingress."""
    ingress = INGRESS.options(
        num_replicas=args.ingress.num_replicas,
        max_ongoing_requests=args.ingress.max_ongoing_requests,
        ray_actor_options={"num_cpus": args.ingress.num_cpus},
    )
    return ingress.bind(
        args.settings,
        args.redis_prefix,
        _model(ASR, args.asr, args.settings),
        _model(HIGHLIGHT, args.highlight, args.settings),
        _model(CAPTION, args.caption, args.settings),
    )
