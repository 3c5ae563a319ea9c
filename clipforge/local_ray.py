"""`ray.init` for the commands that start a Ray of their own (`clipforge worker`, `process`,
`serve`): without token authentication, and tried again when that Ray does not come up in time.

A Ray started here lives on this machine for one command: token auth would only print Ray's
"Token authentication is enabled" warning and make the operator manage ~/.ray/auth_token to run
`ray status` or `serve status`, so it is off unless RAY_AUTH_MODE says otherwise.

Ray gives a node it starts 30 s (fixed in `ray._private.node`) to register with its GCS. On a
busy machine (a CI run, a laptop compiling beside it) the raylet's Python agents can take
longer to boot, and `ray.init` raises "The current node timed out during startup", leaving the
half-started node's processes behind. A worker that dies there leaves its jobs queued with no
one to run them, so the start is tried again, after the leftovers are stopped: they would
otherwise keep the CPU that the next try needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import psutil

log = logging.getLogger(__name__)
_TIMED_OUT = "timed out during startup"
# Whose processes are Ray's: its binaries and agents live in its package, its workers are named
# `ray::...`.
_RAY_MARKERS = ("site-packages/ray/", "ray::")


def init_ray(address: str | None, *, attempts: int = 3, **kwargs: Any) -> None:
    """`ray.init(address=address, **kwargs)`; a Ray started here (no address, or "local") that
    times out during start-up is stopped and started again, up to `attempts` times in all."""
    import ray

    starts_here = address in (None, "local")
    if starts_here:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except Exception as exc:
            if not starts_here or _TIMED_OUT not in str(exc) or attempt == attempts:
                raise
            stopped = _stop_ray_children()
            log.warning(
                "local Ray did not start in time (a busy machine?); starting it again",
                extra={"attempt": attempt, "attempts": attempts, "stopped_pids": stopped},
            )


def shutdown_ray(*, started_here: bool, grace_s: float = 10.0) -> list[int]:
    """`ray.shutdown()`; for a Ray this process started, then also stop whichever of its
    processes outlive it by `grace_s`. Returns their pids.

    Ray's agents are children of its raylet, and one still booting when the raylet stops can
    miss that its parent is gone: CI saw a RuntimeEnvAgent alive 30 s after `clipforge serve`
    refused a config right after starting its Ray. They are listed before the shutdown, because
    once the raylet is gone they are no longer this process's descendants.
    """
    import ray

    ours = _ray_children() if started_here else []
    ray.shutdown()
    _, outlived = psutil.wait_procs(ours, timeout=grace_s)
    if outlived:
        log.warning(
            "Ray processes outlived its shutdown; stopping them",
            extra={"pids": sorted(p.pid for p in outlived)},
        )
        _stop(outlived)
    return sorted(p.pid for p in outlived)


def _stop_ray_children(timeout_s: float = 10.0) -> list[int]:
    """Stop this process's Ray processes (and theirs); their pids."""
    ours = _ray_children()
    _stop(ours, timeout_s)
    return sorted(p.pid for p in ours)


def _ray_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if _is_ray(p)]


def _stop(procs: list[psutil.Process], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL for whatever is left after `timeout_s`."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
            proc.resume()  # a stopped process acts on the SIGTERM only once continued
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout_s)


def _is_ray(proc: psutil.Process) -> bool:
    try:
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return any(marker in line for marker in _RAY_MARKERS)
