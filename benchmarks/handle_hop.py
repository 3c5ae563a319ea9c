"""The cost of one Serve handle hop on this machine, without a model: a no-op deployment called
from an async driver as a Ray actor task and over Serve's gRPC transport, beside a bare Ray
actor call.

    python -m benchmarks.handle_hop [--calls 300]

Starts a private local Ray. The handle's router runs on the calling event loop, as in the
`clipforge api` gateway (`RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0`); the payload is the size
of a five-window scoring request. Calls are interleaved, so a drifting load falls on each
alike; median and mean ms are printed with the load average (docs/capacity.md, fifth round).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

for _name in (
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP",
):
    os.environ.setdefault(_name, "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray  # noqa: E402  (the Serve settings above are read when Ray is imported)
from ray import serve  # noqa: E402

PAYLOAD = {"windows": [{"text": "x" * 90} for _ in range(5)]}


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Echo:
    """Returns its argument."""

    async def __call__(self, value: Any) -> Any:
        """The argument, unchanged."""
        return value


@ray.remote(num_cpus=0.1)
class RawEcho:
    """The same, as a plain Ray actor."""

    def ping(self, value: Any) -> Any:
        """The argument, unchanged."""
        return value


async def _measure(calls: int) -> dict[str, list[float]]:
    handle = serve.get_deployment_handle("Echo", app_name="hop")
    over_grpc = handle.options(_by_reference=False)  # made once, as the gateway makes it
    paths: dict[str, Callable[[], Awaitable[Any]]] = {
        "Serve handle, actor task": lambda: handle.remote(PAYLOAD),
        "Serve handle, gRPC": lambda: over_grpc.remote(PAYLOAD),
    }
    raw = RawEcho.remote()  # type: ignore[attr-defined]
    paths["bare Ray actor call"] = lambda: raw.ping.remote(PAYLOAD)
    for call in paths.values():  # warm-up: connections, the gRPC channel
        for _ in range(50):
            await call()
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(calls):
        for name, call in paths.items():
            started = time.perf_counter()
            await call()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def main(argv: Sequence[str] | None = None) -> None:
    """Start a local Ray and Serve, time the three paths, print a markdown table, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(Echo.bind(), name="hop", route_prefix=None)  # type: ignore[attr-defined]
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        seconds = asyncio.run(_measure(args.calls))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        print("| call | median ms | mean ms |\n|---|---|---|")
        for name, values in seconds.items():
            median, mean = statistics.median(values) * 1000, statistics.mean(values) * 1000
            print(f"| {name} | {median:.2f} | {mean:.2f} |")
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


if __name__ == "__main__":
    main()
