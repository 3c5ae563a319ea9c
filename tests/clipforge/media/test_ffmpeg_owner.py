"""`clipforge.media` starts every ffmpeg/ffprobe process: nothing else builds their command lines.

The rules that module keeps for every call (stdin never the terminal, a timeout, stderr in the
error, a tracing span) hold only if nobody goes around it, so this reads the source folders and
fails on a module outside `clipforge/media` (tests included: they build their media the same
way) that gets hold of the binary (`ffmpeg_exe`, `imageio_ffmpeg`) or, while it starts
processes, has a string that begins with ffmpeg/ffprobe as a program name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOURCE_FOLDERS = (
    "clipforge",
    "models",
    "pipelines",
    "serve_apps",
    "scripts",
    "benchmarks",
    "tests",
)
# The module and its own tests (which check the binary itself).
OWNERS = (ROOT / "clipforge" / "media", ROOT / "tests" / "clipforge" / "media")

# Names through which the ffmpeg binary is reached.
_BINARY_NAMES = frozenset({"ffmpeg_exe", "get_ffmpeg_exe", "imageio_ffmpeg"})
# What starts a process.
_SPAWNERS = frozenset(
    {
        "subprocess",
        "Popen",
        "create_subprocess_exec",
        "create_subprocess_shell",
        "system",
        "popen",
        "spawnv",
        "spawnvp",
        "execv",
        "execvp",
    }
)
_PROGRAM = re.compile(r"(^|[/\\])(ffmpeg|ffprobe)(\.exe)?($|\s)")


def violations(source: str, where: str) -> list[str]:
    """What in `source` starts ffmpeg/ffprobe or reaches for its binary."""
    tree = ast.parse(source, filename=where)
    names: set[str] = set()
    programs: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(part for alias in node.names for part in alias.name.split("."))
            if isinstance(node, ast.ImportFrom) and node.module:
                names.update(node.module.split("."))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _PROGRAM.search(node.value)
        ):
            programs.append((node.lineno, node.value))
    found = [f"{where}: uses {name}" for name in sorted(names & _BINARY_NAMES)]
    if names & _SPAWNERS:
        found += [f"{where}:{line}: starts {text!r}" for line, text in programs]
    return found


def _sources() -> list[Path]:
    files = [p for folder in SOURCE_FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))]
    return [p for p in files if not any(owner in p.parents for owner in OWNERS)]


def test_only_clipforge_media_starts_ffmpeg() -> None:
    files = _sources()
    assert len(files) > 100  # the folders were found
    found = [v for p in files for v in violations(p.read_text(), str(p.relative_to(ROOT)))]
    assert not found, "start ffmpeg through clipforge.media.ffmpeg instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import subprocess\nfrom clipforge.media import ffmpeg_exe\n"
        "subprocess.run([ffmpeg_exe(), '-i', 'x'])\n",
        "import imageio_ffmpeg\nexe = imageio_ffmpeg.get_ffmpeg_exe()\n",
        "import subprocess\nsubprocess.run(['ffmpeg', '-i', 'x'], check=True)\n",
        "from subprocess import Popen\nPopen(['/usr/bin/ffprobe', 'x'])\n",
        "import os\nos.system('ffmpeg -i x y.mp4')\n",
    ],
)
def test_the_check_catches_a_hand_built_command(source: str) -> None:
    assert violations(source, "example.py")


def test_the_check_passes_the_owners_api_and_prose() -> None:
    source = (
        "import subprocess\n"
        "from clipforge.media.ffmpeg import run_ffmpeg\n"
        "subprocess.run(['pg_dump'])  # ffmpeg is started elsewhere\n"
        "run_ffmpeg(['-i', 'x'], timeout_s=5, step='render')\n"
        "HELP = 'Show ffmpeg output too.'\n"
    )
    assert violations(source, "example.py") == []
