#!/usr/bin/env bash
# Install the built bundle (dist/cellviewer) on a Linux PC, with a menu entry and an icon.
#   sudo bash packaging/install-linux.sh             # /opt/cellviewer, /usr/local/bin/cellviewer, system menu
#   bash packaging/install-linux.sh                  # as a user: ~/.local/opt/cellviewer, ~/.local/bin, user menu
#   [sudo] bash packaging/install-linux.sh --uninstall
# SRC=path/to/cellviewer overrides the bundle folder (e.g. an unpacked copy on another PC);
# DEST, BIN and SHARE override where the bundle, the command link and the menu entry + icon go.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${SRC:-dist/cellviewer}
if [ "$(id -u)" = 0 ]; then
  DEST=${DEST:-/opt/cellviewer}; BIN=${BIN:-/usr/local/bin}; SHARE=${SHARE:-/usr/share}
else
  DEST=${DEST:-$HOME/.local/opt/cellviewer}; BIN=${BIN:-$HOME/.local/bin}; SHARE=${SHARE:-${XDG_DATA_HOME:-$HOME/.local/share}}
fi
ICON=$SHARE/icons/hicolor/256x256/apps/cellviewer.png
DESKTOP=$SHARE/applications/cellviewer.desktop
if [ "${1:-}" = --uninstall ]; then
  rm -rf "$DEST" "$ICON" "$DESKTOP"
  [ -L "$BIN/cellviewer" ] && rm -f "$BIN/cellviewer"
  echo "install: removed $DEST, $BIN/cellviewer, $DESKTOP, $ICON"
  exit 0
fi
if [ ! -x "$SRC/cellviewer" ]; then
  echo "install: no bundle at $SRC; build it first with 'bash packaging/build.sh'" >&2
  exit 2
fi
mkdir -p "$(dirname "$DEST")" "$BIN" "$(dirname "$ICON")" "$(dirname "$DESKTOP")"
rm -rf "$DEST.new"
cp -a "$SRC" "$DEST.new"          # copy beside, then swap: a failed copy leaves the old install intact
rm -rf "$DEST.old"; [ -e "$DEST" ] && mv "$DEST" "$DEST.old"
mv "$DEST.new" "$DEST"; rm -rf "$DEST.old"
ln -sfn "$DEST/cellviewer" "$BIN/cellviewer"
cp resources/icon.png "$ICON"
sed "s#@EXEC@#$DEST/cellviewer#" packaging/cellviewer.desktop > "$DESKTOP"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$(dirname "$DESKTOP")" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q "$SHARE/icons/hicolor" 2>/dev/null || true
echo "install: $DEST ($(du -sh "$DEST" | cut -f1)); command $BIN/cellviewer; menu entry $DESKTOP"
echo "install: check it with: $BIN/cellviewer --selftest"
