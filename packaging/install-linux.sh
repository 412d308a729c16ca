#!/usr/bin/env bash
# Install the built bundle (dist/cellviewer) on a Linux PC, with a menu entry and an icon.
#   sudo bash packaging/install-linux.sh             # /opt/cellviewer, /usr/local/bin/cellviewer, system menu
#   bash packaging/install-linux.sh                  # as a user: ~/.local/opt/cellviewer, ~/.local/bin, user menu
#   bash packaging/install-linux.sh --user           # the user install also when run as root
#   [sudo] bash packaging/install-linux.sh [--user] --uninstall
# CELLVIEWER_SRC=path/to/cellviewer overrides the bundle folder (e.g. an unpacked copy on another PC);
# CELLVIEWER_DEST, CELLVIEWER_BIN and CELLVIEWER_SHARE override where the bundle, the command link and the
# menu entry + icon go. The script only ever replaces or removes a folder that is a cellviewer install
# (it holds the .cellviewer-install mark this script writes, or a bundle's cellviewer + _internal/).
set -euo pipefail
cd "$(dirname "$0")/.."
MARK=.cellviewer-install
user=0; uninstall=0
for arg in "$@"; do
  case "$arg" in
    --user) user=1 ;;
    --uninstall) uninstall=1 ;;
    *) echo "install: unknown option '$arg' (use --user, --uninstall)" >&2; exit 2 ;;
  esac
done
SRC=${CELLVIEWER_SRC:-dist/cellviewer}
if [ "$(id -u)" = 0 ] && [ "$user" = 0 ]; then
  DEST=${CELLVIEWER_DEST:-/opt/cellviewer}; BIN=${CELLVIEWER_BIN:-/usr/local/bin}
  SHARE=${CELLVIEWER_SHARE:-/usr/share}
else
  DEST=${CELLVIEWER_DEST:-$HOME/.local/opt/cellviewer}; BIN=${CELLVIEWER_BIN:-$HOME/.local/bin}
  SHARE=${CELLVIEWER_SHARE:-${XDG_DATA_HOME:-$HOME/.local/share}}
fi
ICON=$SHARE/icons/hicolor/256x256/apps/cellviewer.png
DESKTOP=$SHARE/applications/cellviewer.desktop

is_install() {  # a folder this script may replace or remove
  [ -f "$1/$MARK" ] || { [ -x "$1/cellviewer" ] && [ -d "$1/_internal" ]; }
}

refresh_menus() {
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$(dirname "$DESKTOP")" 2>/dev/null || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q "$SHARE/icons/hicolor" 2>/dev/null || true
}

if [ -e "$DEST" ] && ! is_install "$DEST"; then
  echo "install: '$DEST' exists and is not a cellviewer install; nothing was changed (choose another" \
       "CELLVIEWER_DEST, or move that folder away)" >&2
  exit 2
fi

if [ "$uninstall" = 1 ]; then
  removed=()
  if [ -e "$DEST" ]; then rm -rf "$DEST"; removed+=("$DEST"); fi
  if [ -L "$BIN/cellviewer" ] && [ "$(readlink "$BIN/cellviewer")" = "$DEST/cellviewer" ]; then
    rm -f "$BIN/cellviewer"; removed+=("$BIN/cellviewer")
  fi
  for f in "$DESKTOP" "$ICON"; do
    if [ -e "$f" ]; then rm -f "$f"; removed+=("$f"); fi
  done
  refresh_menus
  if [ "$(id -u)" != 0 ] || [ "$user" = 1 ]; then  # a user install's folders it left empty (never a system one)
    for d in "$(dirname "$DEST")" "$BIN" "$(dirname "$DESKTOP")" "$(dirname "$ICON")" "$(dirname "$(dirname "$ICON")")"; do
      rmdir "$d" 2>/dev/null || true
    done
  fi
  if [ "${#removed[@]}" = 0 ]; then
    echo "install: nothing to remove (no cellviewer install at $DEST)"
  else
    echo "install: removed ${removed[*]}"
  fi
  echo "install: kept each user's settings and data (~/.config/cellviewer, ~/.local/share/cellviewer:" \
       "stored models, training runs, the sample's corrections) and the sidecar files beside images"
  exit 0
fi

if [ ! -x "$SRC/cellviewer" ]; then
  echo "install: no bundle at $SRC; build it first with 'bash packaging/build.sh'" >&2
  exit 2
fi
if [ -e "$BIN/cellviewer" ] && { [ ! -L "$BIN/cellviewer" ] || [ "$(readlink "$BIN/cellviewer")" != "$DEST/cellviewer" ]; }; then
  echo "install: '$BIN/cellviewer' exists and is not this install's link; nothing was changed (remove it," \
       "or choose another CELLVIEWER_BIN)" >&2
  exit 2
fi

# the menu entry's Exec (desktop entry spec: quoted when the path holds a space or a reserved character;
# inside the quotes \ " ` $ are escaped, and the entry's own string escaping doubles each backslash; % -> %%)
exec_path=${DEST}/cellviewer
e=${exec_path//%/%%}
case "$exec_path" in
  *[[:space:]\"\'\\\>\<~\|\&\;\$\*\?\#\(\)\`]*)
    e=${e//\\/\\\\\\\\}; e=${e//\"/\\\\\"}; e=${e//\`/\\\\\`}; e=${e//\$/\\\\\$}; e="\"$e\"" ;;
esac
template=$(cat packaging/cellviewer.desktop)
entry=${template//@EXEC@/"$e"}  # (quoted: bash 5.2 would put the pattern in place of each & of it)

mkdir -p "$(dirname "$DEST")" "$BIN" "$(dirname "$ICON")" "$(dirname "$DESKTOP")"
rm -rf "$DEST.new"
cp -a "$SRC" "$DEST.new"          # copy beside, then swap: a failed copy leaves the old install intact
touch "$DEST.new/$MARK"
rm -rf "$DEST.old"; [ -e "$DEST" ] && mv "$DEST" "$DEST.old"
mv "$DEST.new" "$DEST"; rm -rf "$DEST.old"
ln -sfn "$DEST/cellviewer" "$BIN/cellviewer"
cp resources/icon.png "$ICON"
printf '%s\n' "$entry" > "$DESKTOP.new" && mv "$DESKTOP.new" "$DESKTOP"
refresh_menus
echo "install: $DEST ($(du -sh "$DEST" | cut -f1)); command $BIN/cellviewer; menu entry $DESKTOP"
case ":$PATH:" in
  *":$BIN:"*) ;;
  *) echo "install: note: $BIN is not on your PATH; add it (e.g. in ~/.profile) or run $BIN/cellviewer" ;;
esac
echo "install: check it with: $BIN/cellviewer --selftest"
