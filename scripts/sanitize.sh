#!/usr/bin/env bash
# Builds a Debug tree under a sanitizer and runs the whole test suite (unit + integration).
#   scripts/sanitize.sh address   ASan + UBSan (and LeakSanitizer) in build-asan/
#   scripts/sanitize.sh thread    TSan in build-tsan/ (suppressions: tests/tsan.supp, if any)
# Extra arguments go to ctest (e.g. -R db_worker). Reports are written to
# BUILD/sanitizer-logs/ as well, because the integration tests spawn the sanitized imgbatch
# binary and its stderr is not always shown; any report there fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
shift || true
case "$mode" in
  address) build_dir=build-asan ;;
  thread) build_dir=build-tsan ;;
  *)
    echo "usage: $0 address|thread [ctest args...]" >&2
    exit 2
    ;;
esac
log_dir="$PWD/$build_dir/sanitizer-logs"

start=$SECONDS
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DIMGBATCH_SANITIZE="$mode" >/dev/null
cmake --build "$build_dir" -j "${JOBS:-2}"
built=$SECONDS

rm -rf "$log_dir"
mkdir -p "$log_dir"
if [[ $mode == address ]]; then
  export ASAN_OPTIONS="detect_leaks=1:log_path=$log_dir/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log_dir/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
else
  opts="halt_on_error=1:second_deadlock_stack=1:log_path=$log_dir/tsan"
  [[ -f tests/tsan.supp ]] && opts+=":suppressions=$PWD/tests/tsan.supp"
  export TSAN_OPTIONS="$opts${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
fi

status=0
ctest --test-dir "$build_dir" --output-on-failure -j "${JOBS:-2}" -LE slow "$@" || status=$?
if compgen -G "$log_dir/*" >/dev/null; then
  echo "sanitizer reports:" >&2
  for f in "$log_dir"/*; do
    echo "--- $f" >&2
    cat "$f" >&2
  done
  status=1
fi
echo "sanitize $mode: build $((built - start))s, tests $((SECONDS - built))s" >&2
exit "$status"
