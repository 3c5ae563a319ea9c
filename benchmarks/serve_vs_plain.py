"""Serve model endpoints against a plain single-process FastAPI app, same run, same weights.

    python -m benchmarks.serve_vs_plain [--duration 20] [--clients 1 4 16]
                                        [--endpoints asr highlights] [--actor-gateway]

Both sides serve the same API (`create_app`) on loopback, measured from outside over HTTP:

* **Serve**: configs/serve.yaml as `clipforge serve` runs it on a private local Ray (fitted
  to this machine's CPUs, autoscaling capped at what it can place), through the Serve proxy,
  the ingress and the batched model deployments;
* **gateway**: `clipforge api` (one uvicorn process, the standalone tier) with
  SERVE_MODELS_ADDRESS pointing at that Ray: the same model deployments through handles, no
  Serve proxy and no ingress replica in the path (`serve_apps.deployments.gateway`);
* **gateway (actor tasks)**, with `--actor-gateway`: a second `clipforge api` with
  SERVE_MODELS_GRPC=false, whose scoring calls are Ray actor tasks instead of Serve's gRPC
  transport, to compare the two in one run;
* **plain**: one uvicorn process whose model backend runs the same decode and scoring
  functions in-process (same weights and settings, library-default thread counts), one
  request at a time.

Clients are closed-loop (each sends its next request when the last one answers) and arrive
staggered, 100 ms apart. With `--rounds N` each level's window is cut into N slices per side,
run interleaved in rotating order, so a drifting load on a shared machine falls on every
side alike. Throughput counts what completes in the measured window, after every
client has started and a warm-up: audio seconds per wall second for ASR (10 s clips cut from
the speech_long fixture), requests per second for highlight scoring (5 windows a request).
Serve's mean batch comes from the replicas' own batch counters. The load average is printed:
on a shared machine the absolute figures move with it, so compare the two sides of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np

from benchmarks._db import scratch_database
from clipforge.settings import Settings, load_settings
from clipforge.types import Transcript
from serve_apps.api.errors import ModelsUnavailable
from serve_apps.api.protocol_models import (
    CaptionsRequest,
    CaptionsResponse,
    HighlightsRequest,
    HighlightsResponse,
)

ROOT = Path(__file__).resolve().parents[1]
APP = "clipforge"
CLIP_S = 10.0
STAGGER_S = 0.1
WARMUP_S = 3.0
SENTENCES = (
    "Here's the secret nobody tells you about saving money, and it is simpler than you think.",
    "And so um yeah, that was basically it I guess, we went home after that.",
    "What if everything you know about sleep is wrong? The answer is surprising.",
    "We lost everything in a single day, and that changed everything for us.",
    "The three mistakes that cost me a million dollars, and how to avoid them.",
    "Let us start with the simplest question: what does a good release look like?",
    "My guest has spent ten years running large systems for an online store.",
)
# Settings both servers read from the environment: no rate limit in the way of the load.
SERVER_ENV = {
    "RATE_LIMIT_PER_MINUTE": "10000000",
    "RATE_LIMIT_BURST": "1000000",
    "LOG_LEVEL": "WARNING",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


class InProcessModels:
    """The plain app's `ModelBackend`: the deployments' own decode and scoring functions,
    called in-process one request at a time (the models are not safe to share)."""

    def __init__(self, settings: Settings) -> None:
        """Load the same weights as the replicas, with the libraries' default threads."""
        from models.asr import AsrConfig, AsrModel
        from models.highlight import HighlightScorer
        from models.speakers import SpeakerEncoder
        from models.text_encoder import load_text_encoder

        # The attributes the ASR deployment's batch function reads (`_run` below).
        self.model = AsrModel(AsrConfig.from_settings(settings))
        self.speakers = SpeakerEncoder()
        self.scorer = HighlightScorer(load_text_encoder(settings))
        self._lock = asyncio.Lock()

    async def transcribe(self, audio: np.ndarray, *, language: str | None) -> Transcript:
        """The ASR deployment's batch function on a batch of one."""
        from serve_apps.deployments.asr import AsrDeployment

        # The undecorated class's method: the very decode path the replicas run.
        run = cast(Any, AsrDeployment).func_or_class._run
        async with self._lock:
            results: list[Transcript] = await asyncio.to_thread(run, self, [(audio, language)])
        return results[0]

    async def highlights(self, request: HighlightsRequest) -> HighlightsResponse:
        """The highlight deployment's scoring function on a batch of one."""
        from serve_apps.deployments.highlight import score_requests

        async with self._lock:
            results = await asyncio.to_thread(score_requests, self.scorer, [request])
        return results[0]

    async def captions(self, request: CaptionsRequest) -> CaptionsResponse:
        """Not benchmarked."""
        raise ModelsUnavailable("captions are not part of this benchmark")


def run_plain_server(port: int) -> None:
    """The plain app under uvicorn (runs in its own process: `--plain-port`)."""
    import uvicorn

    from serve_apps.api.app import create_app
    from serve_apps.api.deps import ApiDeps

    settings = load_settings()
    deps = ApiDeps.open(settings, models=InProcessModels(settings), redis_prefix="cfbench:plain:")
    uvicorn.run(create_app(deps), host="127.0.0.1", port=port, log_config=None, access_log=False)


def start_serve(port: int) -> str:
    """configs/serve.yaml on a private local Ray, fitted as `clipforge serve` fits it; the
    Ray's GCS address."""
    import ray

    from serve_apps.deployments.fitting import nodes_from_ray
    from serve_apps.deployments.launch import (
        DEFAULT_CONFIG,
        deploy,
        fit_applications,
        load_config,
        use_fast_path,
    )

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    use_fast_path()
    for attempt in range(4):
        try:
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
            break
        except Exception as exc:  # Ray gives its raylet 30 s to register, a busy machine more
            if "timed out during startup" not in str(exc) or attempt == 3:
                raise
            print(f"local Ray did not start ({exc}); trying again", flush=True)
            ray.shutdown()
    config = load_config(DEFAULT_CONFIG)
    nodes = nodes_from_ray(ray.nodes())  # type: ignore[no-untyped-call]
    applications = fit_applications(config, nodes, may_scale=True, fixed_nodes=True)
    deploy(config, applications, host="127.0.0.1", port=port)
    address: str = ray.get_runtime_context().gcs_address
    return address


def batch_totals(deployment: str, polls: int = 12) -> dict[str, int]:
    """Batches, requests and busy ms summed over the deployment's replicas (told apart by
    pid)."""
    from ray import serve

    handle = serve.get_deployment_handle(deployment, app_name=APP)
    seen: dict[int, dict[str, int]] = {}
    for _ in range(polls):  # requests are routed at random: poll until every replica answered
        stats: dict[str, int] = handle.stats.remote().result(timeout_s=60)
        seen[stats["pid"]] = stats
    return {k: sum(s[k] for s in seen.values()) for k in ("batches", "requests", "busy_ms")}


def wav_clips(count: int) -> list[bytes]:
    """`count` 10 s, 16 kHz mono WAV clips cut from the speech_long fixture."""
    import importlib.util

    from clipforge.media.audio import decode_audio

    spec = importlib.util.spec_from_file_location("media", ROOT / "scripts/make_test_media.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    audio = decode_audio(module.build_all()["speech_long"])
    step = int(CLIP_S * 16000)
    clips = []
    for i in range(count):
        part = audio[i * step : (i + 1) * step]
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes((np.clip(part, -1, 1) * 32767).astype("<i2").tobytes())
        clips.append(buffer.getvalue())
    return clips


def highlight_body(i: int) -> dict[str, Any]:
    """Five windows, different in every request (no cache can answer them)."""
    n = len(SENTENCES)
    return {"windows": [{"text": f"{SENTENCES[(i + k) % n]} Take {i}."} for k in range(5)]}


@dataclass(frozen=True)
class Level:
    """One measured run: throughput in the window, errors, and Serve's mean batch."""

    throughput: float
    requests: int
    errors: int
    mean_batch: float | None = None


Send = Callable[[httpx.AsyncClient, int], Awaitable[tuple[bool, float]]]


async def closed_loop(url: str, send: Send, clients: int, duration_s: float) -> Level:
    """`clients` staggered closed-loop clients; work completed in the measured window."""
    start = time.monotonic()
    window_start = start + clients * STAGGER_S + WARMUP_S
    window_end = window_start + duration_s
    done = [0.0, 0.0, 0.0]  # work, requests, errors (in the window)

    async def client(http: httpx.AsyncClient, c: int) -> None:
        await asyncio.sleep(c * STAGGER_S)
        i = c * 100_000
        while time.monotonic() < window_end:
            ok, work = await send(http, i)
            i += 1
            if window_start <= time.monotonic() <= window_end:
                done[0] += work if ok else 0
                done[1] += 1
                done[2] += 0 if ok else 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        await asyncio.gather(*(client(http, c) for c in range(clients)))
    return Level(done[0] / duration_s, int(done[1]), int(done[2]))


def senders(key: str, clips: Sequence[bytes]) -> dict[str, Send]:
    """One request of each endpoint: (succeeded, work done)."""
    auth = {"Authorization": f"Bearer {key}"}

    async def asr(http: httpx.AsyncClient, i: int) -> tuple[bool, float]:
        headers = auth | {"Content-Type": "audio/wav"}
        answer = await http.post("/v1/models/asr", content=clips[i % len(clips)], headers=headers)
        return answer.status_code == 200, CLIP_S

    async def highlights(http: httpx.AsyncClient, i: int) -> tuple[bool, float]:
        answer = await http.post("/v1/models/highlights", json=highlight_body(i), headers=auth)
        return answer.status_code == 200, 1.0

    return {"asr": asr, "highlights": highlights}


DEPLOYMENTS = {"asr": "AsrModel", "highlights": "HighlightScorer"}
UNITS = {"asr": "audio s per wall s", "highlights": "req/s, 5 windows a request"}


def wait_ready(url: str, key: str, timeout_s: float = 600) -> None:
    """Until the model routes answer (weights loaded on both sides)."""
    deadline = time.monotonic() + timeout_s
    body = highlight_body(0)
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(
                f"{url}/v1/models/highlights",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            if answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"{url} did not become ready")


def _mean_ms(call: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1000


def breakdown(key: str, urls: dict[str, str], n: int = 20) -> None:
    """Where a lone highlight request's time goes on each side (mean ms, one client)."""
    from ray import serve

    auth = {"Authorization": f"Bearer {key}"}
    body = highlight_body(1)
    request = HighlightsRequest.model_validate(body)
    model = serve.get_deployment_handle(DEPLOYMENTS["highlights"], app_name=APP)
    model_grpc = model.options(_by_reference=False)  # as the ingress and the gateway call it
    with httpx.Client(timeout=120, headers=auth) as http:
        rows = {
            "plain: POST /v1/models/highlights": lambda: http.post(
                f"{urls['plain']}/v1/models/highlights", json=body
            ),
            "Serve: POST /v1/models/highlights": lambda: http.post(
                f"{urls['serve']}/v1/models/highlights", json=body
            ),
            "gateway: POST /v1/models/highlights (uvicorn + handle)": lambda: http.post(
                f"{urls['gateway']}/v1/models/highlights", json=body
            ),
            **(
                {
                    "gateway, actor tasks: POST /v1/models/highlights": lambda: http.post(
                        f"{urls['gateway_actor']}/v1/models/highlights", json=body
                    )
                }
                if "gateway_actor" in urls
                else {}
            ),
            "plain: GET /health": lambda: http.get(f"{urls['plain']}/health"),
            "Serve: GET /health (proxy + ingress)": lambda: http.get(f"{urls['serve']}/health"),
            "Serve: handle -> HighlightScorer (actor task)": lambda: model.score.remote(
                request
            ).result(timeout_s=120),
            "Serve: handle -> HighlightScorer (gRPC)": lambda: model_grpc.score.remote(
                request
            ).result(timeout_s=120),
        }
        before = batch_totals(DEPLOYMENTS["highlights"])
        totals = dict.fromkeys(rows, 0.0)
        for _ in range(n):  # interleaved, so a drifting load falls on every path alike
            for name, call in rows.items():
                totals[name] += _mean_ms(call, 1)
        timings = {name: total / n for name, total in totals.items()}
        after = batch_totals(DEPLOYMENTS["highlights"])
    busy = (after["busy_ms"] - before["busy_ms"]) / max(1, after["requests"] - before["requests"])
    print("| one client, sequential | mean ms |\n|---|---|")
    for name, ms in timings.items():
        print(f"| {name} | {ms:.1f} |")
    print(f"| Serve: scoring inside the replica (batch of one) | {busy:.1f} |", flush=True)


SIDE_NAMES = {
    "serve": "Serve",
    "gateway": "gateway",
    "gateway_actor": "gateway (actor tasks)",
    "plain": "plain",
}


def measure(args: argparse.Namespace, key: str, urls: dict[str, str]) -> None:
    """Every endpoint and client count on every side in `urls` (plain last); printed as a
    markdown table with each side's ratio to the plain app."""
    send = senders(key, wav_clips(8))
    print(f"plain app environment: {' '.join(args.plain_env) or 'as the benchmark'}")
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}")
    sides = [side for side in SIDE_NAMES if side in urls]
    served = sides[:-1]  # every side but the plain app goes through the model replicas
    names = [SIDE_NAMES[side] for side in sides]
    print(
        f"| endpoint | clients | {' | '.join(names)} | "
        + " | ".join(f"{SIDE_NAMES[side]} / plain" for side in served)
        + f" | mean batch ({', '.join(SIDE_NAMES[side] for side in served)}) "
        f"| errors ({' / '.join(names)}) |"
    )
    print("|---" * (4 + 2 * len(served) + 1) + "|")
    for endpoint in args.endpoints:
        for clients in args.clients:
            work = dict.fromkeys(sides, 0.0)
            counts = {side: [0, 0, 0, 0] for side in sides}  # requests, errors, batched, batches
            for round_ in range(args.rounds):
                # Each side in every round, the order rotated: on a shared machine the load
                # drifts, and a side measured in one block would get a different load.
                shift = round_ % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    before = batch_totals(DEPLOYMENTS[endpoint])
                    slice_s = args.duration / args.rounds
                    level = asyncio.run(closed_loop(urls[side], send[endpoint], clients, slice_s))
                    after = batch_totals(DEPLOYMENTS[endpoint])
                    work[side] += level.throughput * slice_s
                    counts[side][0] += level.requests
                    counts[side][1] += level.errors
                    counts[side][2] += after["requests"] - before["requests"]
                    counts[side][3] += after["batches"] - before["batches"]
            runs = {
                side: Level(
                    work[side] / args.duration,
                    counts[side][0],
                    counts[side][1],
                    counts[side][2] / counts[side][3] if counts[side][3] else float("nan"),
                )
                for side in sides
            }
            plain = runs["plain"]

            def ratio(level: Level, plain: Level = plain) -> float:
                return level.throughput / plain.throughput if plain.throughput else float("nan")

            print(
                f"| {endpoint} ({UNITS[endpoint]}) | {clients} | "
                + " | ".join(f"{runs[side].throughput:.2f}" for side in sides)
                + " | "
                + " | ".join(f"{ratio(runs[side]):.2f}" for side in served)
                + " | "
                + ", ".join(f"{runs[side].mean_batch:.2f}" for side in served)
                + " | "
                + " / ".join(str(runs[side].errors) for side in sides)
                + " |",
                flush=True,
            )
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f}")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments; start both servers on a scratch database; measure; stop them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="Measured s per level.")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Split each level's --duration into this many slices per side, interleaved.",
    )
    parser.add_argument(
        "--endpoints", nargs="+", choices=list(DEPLOYMENTS), default=["asr", "highlights"]
    )
    parser.add_argument(
        "--plain-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="Environment of the plain app only (e.g. OMP_WAIT_POLICY=PASSIVE, as the replicas "
        "get it), to tell a setting's effect from the hops'.",
    )
    parser.add_argument(
        "--actor-gateway",
        action="store_true",
        help="Also measure a second gateway whose scoring calls are Ray actor tasks "
        "(SERVE_MODELS_GRPC=false), to compare the two handle transports in one run.",
    )
    parser.add_argument("--plain-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_port:
        run_plain_server(args.plain_port)
        return

    import psycopg
    from psycopg.rows import dict_row

    from clipforge.db.repo.api_keys import create_api_key

    with scratch_database() as url:
        os.environ.update(SERVER_ENV | {"DATABASE_URL": url})
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            _, key = create_api_key(conn, name="bench")
        sides = ["serve", "gateway", *(["gateway_actor"] if args.actor_gateway else []), "plain"]
        ports = {side: free_port() for side in sides}
        urls = {side: f"http://127.0.0.1:{port}" for side, port in ports.items()}
        plain_cmd = [sys.executable, "-m", "benchmarks.serve_vs_plain"]
        plain_env = dict(item.split("=", 1) for item in args.plain_env)
        servers = [
            subprocess.Popen(
                [*plain_cmd, "--plain-port", str(ports["plain"])],
                cwd=ROOT,
                env=os.environ | plain_env,
            ),
        ]
        try:
            address = start_serve(ports["serve"])
            wait_ready(urls["serve"], key)
            # The standalone tier as `clipforge api` runs it, joined to the benchmark's Ray.
            gateway_cmd = [str(Path(sys.executable).with_name("clipforge")), "api"]
            for side in ("gateway", "gateway_actor"):
                if side not in ports:
                    continue
                grpc = "false" if side == "gateway_actor" else "true"
                servers.append(
                    subprocess.Popen(
                        [*gateway_cmd, "--port", str(ports[side])],
                        cwd=ROOT,
                        env=os.environ
                        | {"SERVE_MODELS_ADDRESS": address, "SERVE_MODELS_GRPC": grpc},
                    )
                )
                wait_ready(urls[side], key)
            wait_ready(urls["plain"], key)
            if "highlights" in args.endpoints:
                breakdown(key, urls)
            measure(args, key, urls)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=60)
            import ray
            from ray import serve

            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()


if __name__ == "__main__":
    main()
