#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*_fuzz.cpp) with clang into build-fuzz/ and runs each for a
# bounded time, starting from its checked-in corpus (fuzz/corpus/TARGET).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 10 s, every target
# 0 seconds runs each target once over its corpus (no new inputs).
# New inputs go to build-fuzz/corpus/TARGET (the checked-in corpus is only read); a crash, a
# leak, undefined behaviour or an input slower than FUZZ_TIMEOUT seconds (default 10) is
# written to build-fuzz/artifacts/ and fails the run. Extra libFuzzer flags: FUZZ_FLAGS
# (e.g. FUZZ_FLAGS="-max_len=1048576 -jobs=2").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}

start=$SECONDS
CC=${CC:-clang} CXX=${CXX:-clang++} cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGBATCH_FUZZ=ON >/dev/null
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/*_fuzz.cpp; do
    name=$(basename "$f" _fuzz.cpp)
    targets+=("$name")
  done
fi
cmake --build "$build_dir" -j "${JOBS:-2}" --target "${targets[@]/#/fuzz_}"
built=$SECONDS

mkdir -p "$build_dir/artifacts"
failed=()
for t in "${targets[@]}"; do
  seeds=fuzz/corpus/$t
  work=$build_dir/corpus/$t
  mkdir -p "$work"
  [[ -d $seeds ]] || seeds=""
  limit=(-max_total_time="$seconds")
  [[ $seconds == 0 ]] && limit=(-runs=0)
  echo "--- fuzz_$t: ${seconds}s" >&2
  # shellcheck disable=SC2086
  if ! "$build_dir/fuzz/fuzz_$t" "${limit[@]}" -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t-" \
    ${FUZZ_FLAGS:-} "$work" $seeds 2>"$build_dir/fuzz_$t.log"; then
    failed+=("$t")
    tail -n 60 "$build_dir/fuzz_$t.log" >&2
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build_dir/fuzz_$t.log" \
      | tr '\n' ' ' >&2
    echo >&2
  fi
done
echo "fuzz: build $((built - start))s, run $((SECONDS - built))s, ${#targets[@]} targets" >&2
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build_dir/artifacts/)" >&2
  exit 1
fi
