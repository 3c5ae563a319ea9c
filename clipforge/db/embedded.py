"""The embedded Postgres server used when DATABASE_URL is unset (`clipforge process`).

`pgserver` ships a real Postgres build in its wheel; the data directory lives under
`Settings.data_dir` so results survive between runs of the CLI.
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
        # cleanup_mode=None keeps the server's data after the process exits.
        _servers[key] = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        log.info("started embedded postgres", extra={"pgdata": key})
    return str(_servers[key].get_uri())
