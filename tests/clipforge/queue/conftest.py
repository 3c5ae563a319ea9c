"""Fixtures of the queue's outage tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.servers import NanioServer

NANIO_KEY, NANIO_SECRET = "outage-key", "outage-secret"


@pytest.fixture()
def nanio(tmp_path: Path) -> Iterator[NanioServer]:
    """A nanio only this test uses, so it can be stopped (credentials NANIO_KEY/NANIO_SECRET)."""
    server = NanioServer(tmp_path / "s3", access_key=NANIO_KEY, secret_key=NANIO_SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()
