#!/usr/bin/env bash
# Paid capacity used, side by side with what the disk allows, in one run:
#  1. the disk's bound: bench_fsync_bench writes and fsyncs FILES small files from 4 threads
#     in the same file system as the outputs (files/s);
#  2. zero latency: FILES one-image jobs through `run --until-idle` (images/s, and the share
#     of the disk's bound; target >= 80%);
#  3. high latency: SLOW_JOBS one-image jobs, SLOW_CONCURRENCY calls allowed in flight, the sim
#     answering after LATENCY_MS: wall time against the ideal
#     ceil(SLOW_JOBS / SLOW_CONCURRENCY) * latency (target within 1.05x).
# Also prints the daemon's peak RSS of each run (GNU time is not needed: VmHWM is sampled).
#
# Usage: bench/throughput.sh [IMGBATCH_BINARY]
#   env: FILES=20000 CONCURRENCY=64 SLOW_JOBS=2000 SLOW_CONCURRENCY=200 LATENCY_MS=1000
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init throughput "${1:-}"
files=${FILES:-20000}
concurrency=${CONCURRENCY:-64}
slow_jobs=${SLOW_JOBS:-2000}
slow_concurrency=${SLOW_CONCURRENCY:-200}
latency=${LATENCY_MS:-1000}
fsync_bin=${FSYNC_BENCH:-$(dirname "$bin")/bench/bench_fsync_bench}
[[ -x "$fsync_bin" ]] || { echo "bench_fsync_bench not found (FSYNC_BENCH)" >&2; exit 2; }

mkdir -p "$dir/fsync"
disk=$("$fsync_bin" "$dir/fsync" "$files" 4 | tee /dev/stderr | awk '{print $(NF-1)}')
rm -rf "$dir/fsync"

# run_case NAME JOBS CONCURRENCY LATENCY_MS: prints "seconds images peak_kib".
run_case() {
    local name=$1 jobs=$2 conc=$3 lat=$4
    local d="$dir/$name"
    mkdir -p "$d"
    start_sim --latency-ms "$lat" --image-size 16
    cat >"$d/imgbatch.json" <<JSON
{
  "database": "$d/imgbatch.db",
  "output_dir": "$d/out",
  "retry": {"max_attempts": 6, "base_delay_s": 0.1, "max_delay_s": 1},
  "providers": [
    {"name": "sim", "api": "openai", "base_url": "http://127.0.0.1:$port/v1",
     "models": ["gpt-image-2"], "max_concurrency": $conc, "timeout_s": 60}
  ]
}
JSON
    awk -v jobs="$jobs" 'BEGIN {
        for (i = 1; i <= jobs; i++)
            printf "{\"key\": \"t%d\", \"prompt\": \"throughput fox %d\", \"model\": \"gpt-image-2\"}\n", i, i
    }' >"$d/jobs.jsonl"
    "$bin" --config "$d/imgbatch.json" enqueue "$d/jobs.jsonl" --batch tp >/dev/null
    echo "$(date +%T) $name: enqueued" >&2
    local start end peak=0 hwm
    start=$(date +%s.%N)
    ${RUN_WRAP:-} "$bin" --config "$d/imgbatch.json" run --until-idle 2>"$d/run.log" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n "$hwm" && "$hwm" -gt "$peak" ]] && peak=$hwm
        sleep 0.05
    done
    wait "$pid" || echo "throughput: $name run exited with $?" >&2
    end=$(date +%s.%N)
    kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
    rm -f "$dir/port"
    local images
    images=$(sqlite3 "$d/imgbatch.db" "SELECT count(*) FROM outputs")
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f ", e - s }'
    echo "$images $peak"
}

read -r t images peak < <(run_case fast "$files" "$concurrency" 0)
awk -v t="$t" -v i="$images" -v d="$disk" -v p="$peak" -v f="$files" 'BEGIN {
    printf "zero latency: %d of %d images in %.2f s = %.0f images/s = %.0f%% of the disk bound %.0f files/s (target >= 80%%); peak RSS %.1f MiB\n", i, f, t, i / t, 100 * i / t / d, d, p / 1024
}'
[[ "$slow_jobs" -gt 0 ]] || exit 0
read -r t images peak < <(run_case slow "$slow_jobs" "$slow_concurrency" "$latency")
awk -v t="$t" -v i="$images" -v j="$slow_jobs" -v c="$slow_concurrency" -v l="$latency" -v p="$peak" 'BEGIN {
    rounds = int((j + c - 1) / c); ideal = rounds * l / 1000
    printf "high latency: %d of %d images, %d in flight, %d ms: %.2f s against an ideal %.1f s = %.3fx (target <= 1.05x); peak RSS %.1f MiB\n", i, j, c, l, t, ideal, t / ideal, p / 1024
}'
