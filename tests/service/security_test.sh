#!/usr/bin/env bash
# ctest service_security: the unit as `cmake --install` generates it, rated by
# `systemd-analyze security --offline=yes`: overall exposure at most 2.0 (README "Hardening").
# Usage: security_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
root=$(mktemp -d /tmp/imgbatch-security.XXXXXX)
trap 'rm -rf "$root"' EXIT
DESTDIR=$root cmake -DCMAKE_INSTALL_PREFIX=/usr/local -DIMGBATCH_SOURCE_DIR="$src" \
  -DIMGBATCH_BINARY_DIR="$root/gen" -DIMGBATCH_BINDIR=bin -DIMGBATCH_DOCDIR=share/doc/imgbatch \
  -P "$src/cmake/install_systemd.cmake" >/dev/null
unit=$root/usr/local/lib/systemd/system/imgbatch.service
out=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
echo "$out" | tail -n 25
score=$(echo "$out" | sed -n 's/.*Overall exposure level for imgbatch.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || { echo "FAIL: no exposure level in the output" >&2; exit 1; }
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || {
  echo "FAIL: exposure $score > 2.0" >&2
  exit 1
}
echo "ok: exposure $score <= 2.0"
