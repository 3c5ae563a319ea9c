"""The embedded Postgres server used when DATABASE_URL is unset (`clipforge process`).

`pgserver` ships a real Postgres build in its wheel; the data directory lives under
`Settings.data_dir`. The server runs while a process that started it runs: `stop_embedded()`
(and, as a fallback, the wheel's exit hook) stops it, so no database is left behind a command.
"""

from __future__ import annotations

import logging
from typing import Any

from clipforge.settings import Settings

log = logging.getLogger(__name__)
_servers: dict[str, Any] = {}


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
