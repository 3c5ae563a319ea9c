"""README's HTTP quick start, run as written: its `bash` block verbatim, offline, on the embedded
default (fresh DATA_DIR, no DATABASE_URL, Redis or S3), with real `clipforge api` and `clipforge
worker` processes on loopback; it uploads a local talk, waits, exports a clip and downloads the
MP4 and its SRT through the signed URLs the export gives."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clipforge.media.probe import probe

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- quickstart: [^>]*-->\n```bash\n(?P<code>.*?)\n```", re.DOTALL)
_TIMEOUT_S = 900
# Variables that would point the commands at this suite's servers instead of the defaults.
_UNSET = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CLUSTER_URL",
    "S3_BUCKET",
    "S3_ENDPOINT_URL",
    "CDN_BASE_URL",
    "RAY_ADDRESS",
    "RAY_AUTH_MODE",  # the worker must start its Ray without the token warning on its own
    "XDG_RUNTIME_DIR",
)


def quickstart_commands() -> str:
    """The README's quick start block, exactly as printed."""
    match = _BLOCK.search(README.read_text(encoding="utf-8"))
    assert match, "README.md lost its quick start block (or its marker comment)"
    return match["code"]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop_group(proc: subprocess.Popen[bytes], data_dir: Path) -> None:
    """SIGTERM the script's process group (the API and the worker it left running), then
    whatever of it, or of the embedded Postgres under `data_dir`, still runs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not [p for p in psutil.process_iter() if _in_group(p, proc.pid)]:
            break
        time.sleep(0.5)
    for leftover in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(leftover.info["cmdline"] or [])
        if _in_group(leftover, proc.pid) or (str(data_dir) in cmdline and "postgres" in cmdline):
            leftover.kill()


def _in_group(p: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


def test_readme_quick_start_runs_as_written(test_media: dict[str, Path], tmp_path: Path) -> None:
    assert _port_free(8080), "the quick start listens on 8080: something else holds it"
    shutil.copyfile(test_media["speech_short"], tmp_path / "talk.mp4")
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env |= {"DATA_DIR": str(data_dir), "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    script = "set -euo pipefail\n" + quickstart_commands()
    log = (tmp_path / "quickstart.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the API and worker stop with it
    )
    try:
        code = proc.wait(timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        elapsed = time.monotonic() - started
        _stop_group(proc, data_dir)
        log.close()
    text = (tmp_path / "quickstart.log").read_text(errors="replace")
    assert code == 0, f"quick start ended with {code} after {elapsed:.0f} s:\n{text[-6000:]}"

    export = json.loads((tmp_path / "export.json").read_text())
    assert export["status"] == "ready"
    for url in [export["url"], export["thumbnail_url"], *export["caption_urls"].values()]:
        assert url.startswith("http://localhost:8080/media/videos/") and "signature=" in url
    info = probe(tmp_path / "clip.mp4")
    assert (info.width, info.height) == (1080, 1920) and info.has_audio
    assert 5.0 <= info.duration_s <= 61.0
    srt = (tmp_path / "clip.srt").read_text()
    cues = [c for c in srt.strip().split("\n\n") if "-->" in c]
    assert cues and all(len(c.splitlines()) >= 3 for c in cues), srt
    # No warnings on the way: neither platformdirs' nor Ray's token authentication one.
    assert "XDG_RUNTIME_DIR" not in text and "Token authentication" not in text, text[-6000:]
    print(f"README quick start: {elapsed:.0f} s")
