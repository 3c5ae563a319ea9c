"""Container HEALTHCHECK: GET $HEALTHCHECK_URL, healthy on a 2xx answer within 2 s.

Python instead of curl because the slim base has no curl and the venv is already there; each
role (API /health, worker metrics port, Serve proxy) sets HEALTHCHECK_URL to its own endpoint.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/health"


def main() -> int:
    """0 when the endpoint answers 2xx, 1 otherwise (Docker's healthy / unhealthy)."""
    url = os.environ.get("HEALTHCHECK_URL", DEFAULT_URL)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if 200 <= response.status < 300 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
