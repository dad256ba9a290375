#!/usr/bin/env bash
# ctest service_install: the README's install block replayed into a temporary root
# (install_replay.sh), then checked as systemd would see it: `systemd-analyze verify` of the
# unit, `systemctl --root` enable, the user and directories from sysusers.d/tmpfiles.d, a
# stripped binary, the man page and completion, and the installed example configuration
# loading with its credential. Needs root (tmpfiles chowns); exits 77 (skipped) otherwise.
# Usage: install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root"; exit 77; }
root=$(mktemp -d /tmp/imgbatch-install.XXXXXX)
trap 'rm -rf "$root"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The block is plain sh (no bashisms: it is labelled sh in the README).
awk '/<!-- install:begin -->/{on=1; next} /<!-- install:end -->/{on=0} on' "$src/README.md" |
  sed '/^```/d' | dash -n || fail "the README install block is not POSIX sh"

# The root starts as the part of a fresh Debian 12 that the checks read: merged /usr, the
# systemd units it ships (multi-user.target, sysinit.target, ...) and kill(1).
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/usr/sbin"
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
ln -s usr/sbin "$root/sbin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp /usr/bin/kill "$root/usr/bin/kill"

"$src/tests/service/install_replay.sh" "$src" "$build" "$root"

prefix=/usr/local
unit=$root$prefix/lib/systemd/system/imgbatch.service
bin=$root$prefix/bin/imgbatch
[ -f "$unit" ] || fail "no unit at $unit"
grep -qx "ExecStart=$prefix/bin/imgbatch run" "$unit" || fail "ExecStart does not name $prefix/bin/imgbatch"
grep -q '@' "$unit" && grep -n '@[A-Z_]*@' "$unit" && fail "unsubstituted @VAR@ in the unit"
grep -qx 'RestartPreventExitStatus=78' "$unit" || fail "no RestartPreventExitStatus=78"

# Stripped: no symbol table, no debug sections.
if readelf -S "$bin" | grep -qE '\.symtab|\.debug_info'; then fail "$bin is not stripped"; fi
[ -f "$root$prefix/share/man/man1/imgbatch.1.gz" ] || fail "no man page"
zcat "$root$prefix/share/man/man1/imgbatch.1.gz" | grep -q '^\.TH IMGBATCH 1' || fail "bad man page"
[ -f "$root$prefix/share/bash-completion/completions/imgbatch" ] || fail "no bash completion"
# The completion completes commands, a command's options and option values.
complete_words() { # WORD... (the last one is completed)
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _imgbatch
    echo "${COMPREPLY[*]}"' _ "$root$prefix/share/bash-completion/completions/imgbatch" "$@"
}
[ "$(complete_words imgbatch st)" = status ] || fail "completion: imgbatch st -> $(complete_words imgbatch st)"
complete_words imgbatch --config x.json run --a | grep -qw -- --allow-multiple ||
  fail "completion: run options"
[ "$(complete_words imgbatch jobs --state fa)" = failed ] || fail "completion: --state values"

# sysusers.d and tmpfiles.d did their part.
grep -q '^imgbatch:' "$root/etc/passwd" || fail "no user imgbatch in $root/etc/passwd"
gid=$(awk -F: '$1 == "imgbatch" {print $3}' "$root/etc/group")
[ -n "$gid" ] || fail "no group imgbatch"
[ "$(stat -c '%a %g' "$root/var/lib/imgbatch")" = "2770 $gid" ] ||
  fail "/var/lib/imgbatch is $(stat -c '%a %g' "$root/var/lib/imgbatch"), want 2770 $gid"
[ "$(stat -c '%a %u' "$root/etc/imgbatch/credentials")" = "700 0" ] || fail "credentials dir mode"
[ "$(stat -c '%a' "$root/etc/imgbatch/credentials/openai")" = 600 ] || fail "credential mode"

# systemctl --root enabled it.
[ -L "$root/etc/systemd/system/multi-user.target.wants/imgbatch.service" ] ||
  fail "not enabled: no multi-user.target.wants link"
command systemctl --root="$root" is-enabled imgbatch.service | grep -qx enabled ||
  fail "systemctl --root is-enabled"

# systemd-analyze verify: the unit as installed (its binary, user and directives).
# MANPATH: Documentation=man:imgbatch(1) is looked up in the root's man pages.
out=$(MANPATH=$root$prefix/share/man systemd-analyze verify --root="$root" imgbatch.service 2>&1) || {
  echo "$out" >&2
  fail "systemd-analyze verify"
}
echo "$out"
if echo "$out" | grep -v -e '/proc/1/root' -e 'running in chroot' | grep .; then
  fail "systemd-analyze verify complains"
fi

# `cmake --install --prefix /usr` (what a package does) gets a unit running /usr/bin/imgbatch,
# in Debian 12's /lib/systemd/system, and its sysusers.d/tmpfiles.d files under /usr/lib.
usr=$root/usr-prefix
DESTDIR=$usr command cmake --install "$build" --prefix /usr >/dev/null
grep -qx 'ExecStart=/usr/bin/imgbatch run' "$usr/lib/systemd/system/imgbatch.service" ||
  fail "--prefix /usr: the unit does not run /usr/bin/imgbatch"
[ -f "$usr/usr/lib/sysusers.d/imgbatch.conf" ] && [ -f "$usr/usr/lib/tmpfiles.d/imgbatch.conf" ] ||
  fail "--prefix /usr: no sysusers.d/tmpfiles.d files under /usr/lib"

# The installed example configuration loads.
"$bin" --config "$root/etc/imgbatch/imgbatch.json" providers >/dev/null ||
  fail "the installed configuration does not load"
echo "ok: install replayed into $root and checked"
