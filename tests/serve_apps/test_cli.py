"""`clipforge api` runs the same app standalone under uvicorn as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from clipforge.db.pool import Pool
from clipforge.settings import Settings
from tests.utils.factories import make_key
from tests.utils.servers import free_port, wait_for_port


def test_clipforge_api_command_serves_the_app(api_settings: Settings, db: Pool):
    _, raw = make_key(db, "cli")
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": str(api_settings.database_url),
        "REDIS_URL": str(api_settings.redis_url),
        "ENVIRONMENT": "test",
    }
    exe = Path(sys.executable).with_name("clipforge")
    proc = subprocess.Popen(
        [str(exe), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout_s=60, proc=proc)  # type: ignore[arg-type]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        auth = {"Authorization": f"Bearer {raw}"}
        assert httpx.get(f"{base}/v1/videos", headers=auth).json()["items"] == []
        models = httpx.post(
            f"{base}/v1/models/captions",
            json={"words": [{"start": 0, "end": 1, "text": "hi"}]},
            headers=auth,
        )
        assert models.status_code == 503
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status reports the signal.
    assert proc.returncode in (0, -15), stderr.decode()[-2000:]
    assert b"Application shutdown complete" in stderr
