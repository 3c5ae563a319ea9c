#!/usr/bin/env bash
# Create .venv and install ClipForge with its dev extras (idempotent; shared by CI and the demo).
# Needs python3.11 (or PYTHON=...) and, where espeak-ng or the DejaVu fonts are missing, root for
# apt-get. pip's output goes to .venv/install.log; the terminal gets one line, or the log's tail
# when something fails. Nothing is reinstalled while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)  # speaks the test media
fc-list 2>/dev/null | grep -q DejaVuSans || missing+=(fonts-dejavu-core fontconfig)  # burned captions
if ((${#missing[@]})); then
  echo "installing ${missing[*]} with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ] || [ ! -x .venv/bin/clipforge ]; then
  echo "installing ClipForge into .venv (a few minutes the first time; log: .venv/install.log)" >&2
  # torch==2.13.0 is pinned: on these machines it resolves to the CPU wheel on disk.
  # pip would byte-compile all 25,000 files of the venv, one at a time (half of a fresh
  # install); Python writes the .pyc of each module it imports on first import instead (the
  # whole suite imports 7,100 of them). Unless PYTHONDONTWRITEBYTECODE is set, as on some
  # machines: then every process would compile torch and ray again on each import, so the venv
  # is compiled here, on every core (a file that does not compile is skipped, as pip skips it).
  # The speaker and text encoders' ONNX graphs are exported into the venv once
  # (models/onnx_graphs.py), not by the first run, side by side (each loads torch on one core
  # for about 14 s).
  if ! { .venv/bin/pip install -q --upgrade pip \
      && .venv/bin/pip install -q --no-compile -e '.[dev]' \
      && { [ -z "${PYTHONDONTWRITEBYTECODE:-}" ] \
           || .venv/bin/python -m compileall -q -j 0 .venv/lib || true; } \
      && { .venv/bin/python -m models.campplus_onnx & campplus=$!; } \
      && .venv/bin/python -m models.text_encoder_onnx && wait "$campplus"; } >.venv/install.log 2>&1
  then
    tail -n 30 .venv/install.log >&2
    echo "error: installing ClipForge failed (full log: .venv/install.log)" >&2
    exit 1
  fi
  rm -f .venv/.installed-* && touch "$stamp"
fi
