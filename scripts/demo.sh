#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: install, build a speech video,
# turn it into captioned clips. Output: ${1:-out}/ (report.html, clips.json, transcript.json, clips/);
# a second run replaces the first one's outputs there (--overwrite).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
video=$(.venv/bin/python scripts/make_test_media.py | awk '$1 == "speech_short" {print $2}')
.venv/bin/clipforge process "$video" --out "${1:-out}" --overwrite
