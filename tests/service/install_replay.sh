#!/usr/bin/env bash
# Replays README.md's install block (between <!-- install:begin --> and <!-- install:end -->)
# into ROOT instead of /, as written: cmake --install with DESTDIR=ROOT, systemd-sysusers,
# systemd-tmpfiles and systemctl with --root=ROOT, absolute paths of install(1) under ROOT.
# `systemctl daemon-reload` is skipped and `enable --now` only enables (no service manager
# runs for ROOT). Usage: install_replay.sh SOURCE_DIR BUILD_DIR ROOT
set -euo pipefail
src=$1 build=$2 root=$3
block=$(awk '/<!-- install:begin -->/{on=1; next} /<!-- install:end -->/{on=0} on' "$src/README.md" |
  sed '/^```/d')
[ -n "$block" ] || { echo "no install block in $src/README.md" >&2; exit 1; }

# A fresh system has /etc (systemd-sysusers --root locks ROOT/etc/passwd).
mkdir -p "$root/etc"
export DESTDIR=$root ROOT=$root IMGBATCH_REPLAY_BUILD=$build
cmake() {
  if [ "$1" = --install ] && [ "$2" = build ]; then
    shift 2
    command cmake --install "$IMGBATCH_REPLAY_BUILD" "$@"
  else
    command cmake "$@"
  fi
}
systemd-sysusers() { command systemd-sysusers --root="$ROOT" "$@"; }
systemd-tmpfiles() { command systemd-tmpfiles --root="$ROOT" "$@"; }
systemctl() {
  case "$1" in
    daemon-reload) echo "replay: skipped: systemctl daemon-reload" ;;
    enable)
      shift
      local args=() a
      for a in "$@"; do [ "$a" = --now ] || args+=("$a"); done
      command systemctl --root="$ROOT" enable "${args[@]}"
      ;;
    *) echo "replay: systemctl $1 is not part of an install" >&2; return 1 ;;
  esac
}
install() {
  local args=() a
  for a in "$@"; do
    case "$a" in
      /dev/*) args+=("$a") ;;
      /*) args+=("$ROOT$a") ;;
      *) args+=("$a") ;;
    esac
  done
  command install "${args[@]}"
}
export -f cmake systemd-sysusers systemd-tmpfiles systemctl install

cd "$src"
echo "$block" | sed 's/^/replay: /'
bash -euo pipefail -c "$block"
