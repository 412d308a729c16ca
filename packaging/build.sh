#!/usr/bin/env bash
# Build the one-folder PyInstaller bundle dist/cellviewer and self-test it.
#   bash packaging/build.sh                        # CPU bundle (lazily loaded CUDA libraries left out)
#   CELLVIEWER_BUNDLE=cuda bash packaging/build.sh # keep every CUDA library (GPU PCs)
#   SKIP_SELFTEST=1 bash packaging/build.sh        # build only
# Needs .venv (bash packaging/setup-env.sh). Installs PyInstaller into it (the "package" extra).
# Runs niced; on this 2-core machine a build takes 2-6 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "build: no .venv here; run 'bash packaging/setup-env.sh' first" >&2
  exit 2
fi
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  "$PY" -m pip install -q -e ".[package]"
fi
[ -f resources/icon.png ] && [ -f resources/icon.ico ] || "$PY" packaging/make_icon.py
export CELLVIEWER_BUNDLE="${CELLVIEWER_BUNDLE:-cpu}"
start=$(date +%s)
nice -n "${NICE:-5}" "$PY" -m PyInstaller --noconfirm --clean --log-level "${PYI_LOG_LEVEL:-WARN}" \
  --distpath dist --workpath build/pyinstaller packaging/cellviewer.spec
end=$(date +%s)
secs=$((end - start))
size=$(du -sh dist/cellviewer | cut -f1)
files=$(find dist/cellviewer -type f | wc -l)
echo "build: dist/cellviewer ($CELLVIEWER_BUNDLE variant) built in $((secs / 60)) min $((secs % 60)) s; size $size, $files files"
if [ "${SKIP_SELFTEST:-0}" != 1 ]; then
  echo "build: running the bundle's self-test"
  dist/cellviewer/cellviewer --selftest
  if "$PY" -c "import pytest" 2>/dev/null; then  # the same, as the test CI would run on a built bundle
    CELLVIEWER_TEST_BUNDLE=dist/cellviewer "$PY" -m pytest -q -p no:cacheprovider tests/test_packaging.py \
      -k built_bundle
  fi
fi
