#!/usr/bin/env bash
# Create .venv and install ClipForge with its dev extras (idempotent; shared by CI and the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)  # speaks the test media
fc-list 2>/dev/null | grep -q DejaVuSans || missing+=(fonts-dejavu-core fontconfig)  # burned captions
if ((${#missing[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch==2.13.0 is pinned: on these machines it resolves to the CPU wheel on disk.
.venv/bin/pip install -q -e '.[dev]'
