"""API routers, one per capability."""

from typing import Any

from serve_apps.api.protocol import ErrorResponse

#: Error answers every authenticated route may give, documented once.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 413, 422, 429, 503)
}
