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
  # pip byte-compiles one file at a time (half of a fresh install); compileall does the same
  # files on every core (a file that does not compile is skipped, as pip skips it). The .pyc
  # files must exist: with PYTHONDONTWRITEBYTECODE set, as on some machines, every process
  # would otherwise compile torch and ray again on each import. The speaker and text
  # encoders' ONNX graphs are exported into the venv once (models/onnx_graphs.py), not by the
  # first run.
  if ! { .venv/bin/pip install -q --upgrade pip \
      && .venv/bin/pip install -q --no-compile -e '.[dev]' \
      && { .venv/bin/python -m compileall -q -j 0 .venv/lib || true; } \
      && .venv/bin/python -m models.campplus_onnx \
      && .venv/bin/python -m models.text_encoder_onnx; } >.venv/install.log 2>&1
  then
    tail -n 30 .venv/install.log >&2
    echo "error: installing ClipForge failed (full log: .venv/install.log)" >&2
    exit 1
  fi
  rm -f .venv/.installed-* && touch "$stamp"
fi
