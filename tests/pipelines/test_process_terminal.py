"""`clipforge process` as a person runs it: in a terminal, with nothing set up.

The command runs under `script` (a real pseudo-terminal, the way an interactive shell runs it),
with its own local Ray and the embedded Postgres, exactly as the README's main command does. The
screen it leaves is read back through a terminal emulator (pyte), so the line count is what a
person sees, not the progress display's redraws.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyte
import pytest

from tests.utils.wait import wait_until

_REPO = Path(__file__).resolve().parents[2]
_LIMIT_S = 420  # a hang (ffmpeg stopped by SIGTTIN) would hit this; a good run takes ~30-60 s


@pytest.fixture()
def short_tmp() -> Iterator[Path]:
    """A short temp folder: Ray's socket paths under it must stay below 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="cf-", dir="/tmp") as tmp:
        yield Path(tmp)


def _person_env(tmp: Path) -> dict[str, str]:
    drop = {
        "DATABASE_URL", "REDIS_URL", "S3_ENDPOINT_URL", "S3_BUCKET", "CDN_BASE_URL",
        "RAY_ADDRESS", "RAY_AUTH_MODE",  # the CLI must need no Ray set-up from the user
        "CLIPFORGE_API_KEY",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {
        "DATA_DIR": str(tmp / "data"),
        "RAY_TMPDIR": str(tmp / "ray"),  # tells this run's Ray processes apart from others
        "HOME": str(tmp / "home"),  # nothing may be written to a real home (~/.ray/auth_token)
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "LINES": "60",
    }


def _screen(raw: bytes, columns: int = 120, lines: int = 300) -> list[str]:
    screen = pyte.Screen(columns, lines)
    pyte.ByteStream(screen).feed(raw)
    return [line.rstrip() for line in screen.display if line.strip()]


def _ours_running(tmp: Path) -> list[str]:
    """Processes whose command line names this run's folders (its Postgres, its Ray)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(tmp) in cmdline and proc.info["pid"] != os.getpid():
            found.append(f"{proc.info['pid']}: {cmdline[:160]}")
    return found


def test_process_in_a_terminal_finishes_quietly_and_leaves_nothing_running(
    test_media: dict[str, Path], short_tmp: Path
) -> None:
    # The README's command (scripts/demo.sh) as its second run finds the folder: another run's
    # outputs (three clips) beside a file of the user's own, replaced with --overwrite.
    out = _used_out_folder(short_tmp / "out", clips=3)
    (short_tmp / "home").mkdir()
    cmd = shlex.join(
        [str(_REPO / ".venv/bin/clipforge"), "process", str(test_media["speech_short"]),
         "--out", str(out), "--top-k", "2", "--overwrite"]
    )  # fmt: skip
    started = time.monotonic()
    run = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        env=_person_env(short_tmp),
        cwd=_REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=_LIMIT_S,
    )
    elapsed = time.monotonic() - started
    screen = _screen(run.stdout)
    shown = "\n".join(screen)
    assert run.returncode == 0, shown + (out / "clipforge.log").read_text()[-3000:]
    assert elapsed < _LIMIT_S
    assert len(screen) <= 15, shown
    for noise in ("Traceback", "INFO", "WARNING", "core_worker", "(raylet)"):
        assert noise not in shown, shown
    for stage in ("import", "transcribe", "find clips", "render clips"):
        assert any(line.startswith(stage) and line.endswith("done") for line in screen), shown
    assert "report.html" in screen[-1]
    clips = json.loads((out / "clips.json").read_text())
    assert clips and all((out / c["files"]["mp4"]).stat().st_size > 0 for c in clips)
    assert all((out / c["files"]["mp4"]).read_bytes()[4:8] == b"ftyp" for c in clips)
    # --overwrite cleared the other run's outputs (its third clip is gone), not the user's file.
    assert sorted(p.name for p in (out / "clips").iterdir()) == sorted(
        Path(rel).name for c in clips for rel in c["files"].values()
    )
    assert (out / "notes.txt").read_text() == "mine"
    assert "old" not in (out / "report.html").read_text()[:100]
    # Framework output went to the log file instead of the terminal.
    assert "Ray" in (out / "clipforge.log").read_text()
    # Nothing it started is left: its Postgres, its Ray processes.
    # Ray's last workers may take a moment to see their raylet go.
    wait_until(
        lambda: not _ours_running(short_tmp),
        timeout_s=10,
        interval_s=0.2,
        what=lambda: _ours_running(short_tmp),
    )
    assert not (short_tmp / "home" / ".ray").exists()  # no token for a private local Ray
    # A one-off run keeps no copy of the input or the renders in the data folder.
    storage = short_tmp / "data" / "storage"
    assert not storage.exists() or not any(p.is_file() for p in storage.rglob("*"))


def _cli(*args: str, tmp: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = _person_env(tmp)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "clipforge.cli", *args],
        env=env,
        cwd=_REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad_style", "'nonsense' is not one of 'auto', 'shorts', 'karaoke', 'bold'"),
        ("bad_aspect", "'4:3' is not one of '9:16', '4:5', '1:1', '16:9'"),
        ("bad_layout", "'pip' is not one of 'auto', 'speaker', 'split', 'center'"),
        ("bad_top_k", "--top-k"),
        ("unwritable_out", "cannot write to output folder"),
        ("out_is_a_file", "is not a folder"),
        ("empty", "the file is empty"),
        ("not_media", "corrupt or not a supported media file"),
        ("no_audio", "has no audio stream"),
        ("audio_only", "has no video stream"),
        ("missing", "is not a file or an http(s) URL"),
        ("private_url", "source URL refused: its host must resolve to public addresses only"),
        ("studio_without_key", "--studio needs CLIPFORGE_API_KEY"),
        ("studio_not_a_url", "--studio takes the API's http(s) URL"),
    ],
)
def test_user_errors_end_at_once_with_one_line(
    test_media: dict[str, Path], short_tmp: Path, case: str, message: str
) -> None:
    good = str(test_media["speech_short"])
    text_file = short_tmp / "notes.txt"
    text_file.write_text("not a video\n" * 100)
    args = {
        "bad_style": [good, "--style", "nonsense"],
        "bad_aspect": [good, "--aspect", "4:3"],
        "bad_layout": [good, "--layout", "pip"],
        "bad_top_k": [good, "--top-k", "0"],
        "unwritable_out": [good, "--out", "/proc/clipforge-out"],
        "out_is_a_file": [good, "--out", str(text_file)],
        "empty": [str(test_media["empty"])],
        "not_media": [str(text_file)],
        "no_audio": [str(test_media["no_audio"])],
        "audio_only": [str(test_media["audio_only"])],
        "missing": [str(short_tmp / "nope.mp4")],
        "private_url": ["http://127.0.0.1:9/video.mp4"],
        "studio_without_key": [good, "--studio", "http://127.0.0.1:8080"],
        "studio_not_a_url": [good, "--studio", "127.0.0.1:8080"],
    }[case]
    if "--out" not in args:
        args += ["--out", str(short_tmp / "out")]
    result, elapsed = _cli("process", *args, tmp=short_tmp)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    # Under the seconds that starting Postgres and Ray take (the check below is the proof that
    # nothing started); the margin absorbs a loaded CI host (5 s failed at load 15-20: the
    # interpreter and its imports alone took 5.3-5.4 s).
    assert elapsed < 10.0, f"{case} took {elapsed:.2f} s"
    assert not (short_tmp / "data" / "pgdata").exists()  # refused before anything started


def test_help_lists_the_choices(short_tmp: Path) -> None:
    result, _ = _cli("process", "--help", tmp=short_tmp)
    assert result.returncode == 0
    assert "9:16|4:5|1:1|16:9" in result.stdout and "karaoke|bold|minimal" in result.stdout


def test_sigterm_mid_run_stops_what_it_started(
    test_media: dict[str, Path], short_tmp: Path
) -> None:
    out = short_tmp / "out"
    (short_tmp / "home").mkdir()
    proc = subprocess.Popen(
        [str(_REPO / ".venv/bin/clipforge"), "process", str(test_media["speech_short"]),
         "--out", str(out)],
        env=_person_env(short_tmp),
        cwd=_REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    log = out / "clipforge.log"

    def started() -> bool:  # Ray and the embedded Postgres are both up (or it exited)
        return proc.poll() is not None or (
            log.exists() and "Started a local Ray" in log.read_text()
        )

    with contextlib.suppress(AssertionError):  # after 120 s it is stopped mid-start-up instead
        wait_until(started, timeout_s=120, interval_s=0.2)
    assert proc.poll() is None, proc.communicate()
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr
    wait_until(
        lambda: not _ours_running(short_tmp),
        timeout_s=15,
        interval_s=0.2,
        what=lambda: _ours_running(short_tmp),
    )


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every path under `folder` (the folder itself too) with its mtime and content hash."""
    found = {".": (folder.stat().st_mtime_ns, "")}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(folder))] = (path.stat().st_mtime_ns, digest)
    return found


def _used_out_folder(out: Path, *, clips: int) -> Path:
    """`out` as another run left it (`clips` clips in every format), with a file of the
    user's own (`notes.txt`)."""
    (out / "clips").mkdir(parents=True)
    for rank in range(1, clips + 1):
        for ext in ("mp4", "jpg", "srt", "vtt", "ass"):
            (out / "clips" / f"0{rank}.{ext}").write_bytes(f"old {rank} {ext}".encode())
    old_clips = [{"rank": r, "files": {"mp4": f"clips/0{r}.mp4"}} for r in range(1, clips + 1)]
    (out / "clips.json").write_text(json.dumps(old_clips))
    (out / "transcript.json").write_text("{}")
    (out / "report.html").write_text("<html>old</html>")
    (out / "notes.txt").write_text("mine")
    return out


def test_a_used_out_folder_is_refused_without_overwrite(
    test_media: dict[str, Path], short_tmp: Path
) -> None:
    # What --overwrite then clears and keeps: the terminal run above.
    out = _used_out_folder(short_tmp / "out", clips=2)
    before = _snapshot(out)
    time.sleep(0.05)  # a write now would show in the mtimes
    source = str(test_media["speech_short"])
    result, elapsed = _cli("process", source, "--out", str(out), "--top-k", "1", tmp=short_tmp)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "another run's outputs" in lines[0] and "--overwrite" in lines[0]
    assert elapsed < 10.0  # the bound for a user error above (2 s failed at load 30-60)
    assert _snapshot(out) == before  # nothing in the folder changed, the folder itself neither
