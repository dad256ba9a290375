#!/usr/bin/env bash
# ctest service_deb (label slow): `cpack -G DEB` from the build directory, then the package
# checked: lintian reports no error, the files and maintainer scripts are where Debian wants
# them, and the unit in it runs /usr/bin/imgbatch. Usage: deb_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
command -v lintian >/dev/null || { echo "skipped: lintian is not installed"; exit 77; }
out=$(mktemp -d /tmp/imgbatch-deb.XXXXXX)
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log"; fail "cpack"; }
deb=$(ls "$out"/imgbatch_*.deb)
echo "package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb"
files=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/imgbatch ./lib/systemd/system/imgbatch.service ./usr/lib/sysusers.d/imgbatch.conf \
  ./usr/lib/tmpfiles.d/imgbatch.conf ./usr/share/man/man1/imgbatch.1.gz \
  ./usr/share/bash-completion/completions/imgbatch ./usr/share/doc/imgbatch/copyright \
  ./usr/share/doc/imgbatch/changelog.gz ./usr/share/doc/imgbatch/examples/imgbatch.service.json; do
  echo "$files" | grep -q " $f\$" || fail "$f is not in the package"
done
mkdir "$out/x"
dpkg-deb --raw-extract "$deb" "$out/x"
grep -qx 'ExecStart=/usr/bin/imgbatch run' "$out/x/lib/systemd/system/imgbatch.service" ||
  fail "the packaged unit does not run /usr/bin/imgbatch"
for s in postinst prerm postrm; do
  [ -x "$out/x/DEBIAN/$s" ] || fail "no executable $s"
  dash -n "$out/x/DEBIAN/$s" || fail "$s: syntax"
done
grep -q 'systemd-sysusers imgbatch.conf' "$out/x/DEBIAN/postinst" || fail "postinst creates no user"
grep -q 'systemd-tmpfiles --create imgbatch.conf' "$out/x/DEBIAN/postinst" || fail "postinst: tmpfiles"
grep -q 'deb-systemd-helper enable imgbatch.service' "$out/x/DEBIAN/postinst" || fail "postinst: enable"

# lintian: errors fail the test; warnings are printed.
lintian --tag-display-limit 0 "$deb" >"$out/lintian.log" 2>&1 || true
cat "$out/lintian.log"
if grep -q '^E:' "$out/lintian.log"; then fail "lintian reports errors"; fi
if grep -q '^W:' "$out/lintian.log"; then echo "lintian warnings (not errors) above"; fi
echo "ok: $deb builds and is lintian clean of errors"
