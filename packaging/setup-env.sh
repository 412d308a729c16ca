#!/usr/bin/env bash
# Create .venv and install cellviewer into it (editable).
#   bash packaging/setup-env.sh        # the app
#   bash packaging/setup-env.sh test   # the app + test tools
# Debian packages: the Qt xcb runtime libraries (for a real window), poppler-utils (PDF checks).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  for p in libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 \
           libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 libdbus-1-3 \
           libfontconfig1 poppler-utils; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null) \
      || echo "setup-env: could not install Debian packages:$need (the GUI may not start; tests run offscreen)" >&2
  fi
fi
PY=${PYTHON:-python3}
# a stock Debian python3 makes no venv without python3-venv (ensurepip)
if ! "$PY" -c "import ensurepip" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) \
    || echo "setup-env: could not install python3-venv; 'python3 -m venv' may fail" >&2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned resolve pulls gigabytes, the CPU-only 2.13 breaks torchvision.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ "${1:-}" = test ]; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
