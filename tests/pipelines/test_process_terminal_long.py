"""`clipforge process` on minutes of video in a terminal: the transcribe bar advances by
seconds of media while the job runs, every step has its own line, finished bars are full.

Its own file (the terminal helpers are test_process_terminal.py's) so that pytest-xdist, which
keeps a file's tests on one worker, runs this two-minute test beside the other terminal tests.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pyte
import pytest

from clipforge.media.ffmpeg import run_ffmpeg
from pipelines.config import load_pipeline_config
from tests.pipelines.test_process_terminal import _LIMIT_S, _REPO, _person_env
from tests.pipelines.test_process_terminal import short_tmp as short_tmp  # the fixture

_AMOUNT = re.compile(r"transcribe\s+[━╸╺╾╼─ ]*\s*(\d+:\d\d)/(\d+:\d\d)\s+\S+\s+(\w+)")
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _seconds(clock: str) -> int:
    minutes, seconds = clock.split(":")
    return int(minutes) * 60 + int(seconds)


@pytest.mark.slow
@pytest.mark.timeout(2 * _LIMIT_S + 60)
def test_the_transcribe_bar_advances_through_minutes_of_video(
    test_media: dict[str, Path], short_tmp: Path
) -> None:
    """Seconds of media transcribed, read from the job row while the job runs; every step of
    the run (start-up and shutdown too) has its own line, and finished bars are full."""
    out = short_tmp / "out"
    (short_tmp / "home").mkdir()
    # The first 150 s of the ten-minute video in ASR batches of one 30 s chunk: five batches,
    # so the bar has several steps to show, at a quarter of the whole video's CPU (the batch
    # size changes when the bar moves, not what it counts).
    video = short_tmp / "minutes.mp4"
    run_ffmpeg(
        ["-i", str(test_media["speech_long"]), "-t", "150", "-c", "copy", str(video)],
        timeout_s=60,
        step="cut",
    )
    # The shipped config without speaker turns and with draft-size renders: the bar counts
    # ASR's seconds either way, and the voice embeddings cost more CPU than all the rest of the
    # run (test_transcribe_speakers.py and test_process.py keep them on, test_export_presets.py
    # checks render sizes).
    config = load_pipeline_config(
        transcribe__speaker_turns=False, transcribe__asr_batch_size=1, export__short_side=240
    )
    config_path = config.save(short_tmp / "pipeline.yaml")
    cmd = shlex.join(
        [str(_REPO / ".venv/bin/clipforge"), "process", str(video),
         "--out", str(out), "--top-k", "1", "--config", str(config_path)]
    )  # fmt: skip
    run = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        env=_person_env(short_tmp),
        cwd=_REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=2 * _LIMIT_S,
    )
    final = pyte.Screen(120, 300)  # fed once: pyte takes a while over minutes of redraws
    pyte.ByteStream(final).feed(run.stdout)
    screen = [line.rstrip() for line in final.display if line.strip()]
    shown = "\n".join(screen)
    assert run.returncode == 0, shown + (out / "clipforge.log").read_text()[-3000:]
    # Every redraw of the transcribe line while its job ran: the seconds done kept growing.
    text = _ANSI.sub(b"", run.stdout).decode("utf-8", "replace")
    seen = [(_seconds(d), _seconds(t), note) for d, t, note in _AMOUNT.findall(text)]
    total = seen[-1][1]
    assert 145 <= total <= 155, seen[-1]
    running = sorted({done for done, _, note in seen if note == "running" and 0 < done < total})
    assert len(running) > 2, running  # it advanced more than twice before the end
    print(f"transcribe seconds shown while running: {running} of {total}")
    assert seen[-1][0] == total and seen[-1][2] == "done"
    for label in ("start-up", "import", "transcribe", "find clips", "render clips",
                  "write outputs", "shut down", "stop Postgres"):  # fmt: skip
        assert any(line.startswith(label) and line.endswith("done") for line in screen), shown
    # Finished bars are full, in the finished colour (green).
    for row in final.buffer.values():
        line = "".join(row[x].data for x in range(120))
        if line.startswith(("transcribe", "render clips")):
            bar = [row[x] for x in range(120) if row[x].data in "━╸╺"]
            assert len(bar) == 24 and {c.fg for c in bar} == {"green"}, line
