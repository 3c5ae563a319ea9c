"""The embedded Postgres server used when DATABASE_URL is unset (`clipforge process`).

`pgserver` ships a real Postgres build in its wheel; the data directory lives under
`Settings.data_dir`. Every process that starts or joins it (`clipforge api`, `worker`, `process`)
adds its pid to the wheel's list of users; the server runs while one of them does. Each leaves
through `stop_embedded()` (and, as a fallback, the wheel's exit hook), and the last one out
stops it, so no database is left behind a command. `leaving_embedded_on_exit` makes SIGTERM,
SIGINT and SIGHUP unwind the process instead of ending it on the spot, since a process killed by
a signal runs neither `finally` blocks nor exit hooks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Any

from clipforge.settings import Settings

log = logging.getLogger(__name__)
# pgserver asks platformdirs for a runtime folder when imported; without XDG_RUNTIME_DIR
# (containers, CI, ssh without a login session) platformdirs warns on stderr and falls back to a
# private /tmp/runtime-<uid>, which holds pgserver's lock file just as well. Only that case is
# silenced: a runtime folder with wrong permissions still warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)
_servers: dict[str, Any] = {}
# Set by Ray 2.x's job supervisor on every `ray job submit` driver (ray/dashboard/modules/job/
# job_supervisor.py, _get_driver_env_vars); RAY_JOB_ID is an internal flag Ray strips.
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def in_ray_job() -> bool:
    """True inside a driver started by `ray job submit`."""
    return RAY_JOB_ENV in os.environ


def require_database_url(settings: Settings, *, who: str) -> str:
    """Like `resolve_database_url`, but a Ray job driver refuses the embedded default: it would
    start a private Postgres on the head node that no worker or API ever sees."""
    if not settings.database_url and in_ray_job():
        raise SystemExit(
            f"{who}: DATABASE_URL is not set in this Ray job; refusing to start an embedded "
            "Postgres on the head. Pass it with --runtime-env-json "
            '\'{"env_vars": {"DATABASE_URL": "postgresql://..."}}\' or set it on the head.'
        )
    return resolve_database_url(settings)


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set, else the URI of an embedded server started on first use."""
    if settings.database_url:
        return settings.database_url
    pgdata = settings.data_dir / "pgdata"
    key = str(pgdata)
    if key not in _servers:
        import pgserver  # heavy; only needed for the embedded default

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode="stop": the last process holding the server stops it; the data stays.
        _servers[key] = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        log.info("started embedded postgres", extra={"pgdata": key})
    return str(_servers[key].get_uri())


def embedded_running() -> bool:
    """Whether this process started an embedded Postgres that is still up."""
    return bool(_servers)


def stop_embedded() -> None:
    """Stop the embedded servers this process started, unless another live process uses them."""
    import psutil

    for key, server in list(_servers.items()):
        handles = server.global_process_id_list
        # A run killed earlier left its pid in the wheel's list of users; without pruning it the
        # wheel would think someone still uses the server and never stop it.
        handles.put([pid for pid in handles.get() if psutil.pid_exists(pid)])
        server.cleanup()
        del _servers[key]
        log.info("stopped embedded postgres", extra={"pgdata": key})


_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Signalled(SystemExit):
    """Unwinding because of a signal: SystemExit, so `finally` blocks and exit hooks run and no
    `except Exception` swallows it; 128 + n is the shell's code for it."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _unwind(signum: int, _frame: FrameType | None) -> None:
    raise _Signalled(signum)


@contextlib.contextmanager
def leaving_embedded_on_exit() -> Iterator[None]:
    """Around a command that may start or join the embedded Postgres: leave it on the way out.

    Until the command installs its own handlers (a graceful stop), SIGTERM, SIGINT and SIGHUP
    unwind through here. A server such as uvicorn that captures signals while it runs puts these
    handlers back when it stops and re-raises the signal it caught, which lands here too. Once
    the server is left, a SIGTERM or SIGHUP is raised again with its default action, so the exit
    status still says the process was terminated by it (SIGINT ends with 130, as after Ctrl-C).
    """
    previous = {sig: signal.getsignal(sig) for sig in _EXIT_SIGNALS}
    for sig in _EXIT_SIGNALS:
        signal.signal(sig, _unwind)
    signalled: int | None = None
    try:
        yield
    except _Signalled as exc:
        signalled = exc.signum
        raise
    finally:
        # A second signal while the server stops must not cut the stop short.
        for sig in _EXIT_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop_embedded()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if signalled is not None and previous.get(signal.Signals(signalled)) == signal.SIG_DFL:
            signal.raise_signal(signalled)
