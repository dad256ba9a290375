#!/usr/bin/env bash
# A rate limit nobody configured: the sim refuses more than 240 requests/minute (4/s) with
# 429; the provider is configured without requests_per_minute, so the lane must learn the
# rate from the 429s. Runs SECONDS of work and prints the share of the allowed rate used
# (target >= 90%) and the share of requests refused (target < 10%). HEADERS=1 makes the sim
# send x-ratelimit-* headers too.
#
# Usage: bench/unknown_limit.sh [IMGBATCH_BINARY]
#        (env: RPM=240 SECONDS_OF_WORK=60 LATENCY_MS=50 CONCURRENCY=16 HEADERS=0)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init unknown-limit "${1:-}"
rpm=${RPM:-240}
seconds=${SECONDS_OF_WORK:-60}
latency=${LATENCY_MS:-50}
concurrency=${CONCURRENCY:-16}
extra=()
[[ "${HEADERS:-0}" == 1 ]] && extra=(--ratelimit-headers)

start_sim --latency-ms "$latency" --image-size 16 --rpm "$rpm" "${extra[@]}"

sim_config "$concurrency" 30

# More work than the window can take, so the limit is the only brake.
jobs=$((rpm * seconds / 60 * 2))
awk -v jobs="$jobs" 'BEGIN {
    for (i = 1; i <= jobs; i++)
        printf "{\"key\": \"u%d\", \"prompt\": \"unknown limit fox %d\", \"model\": \"gpt-image-2\", \"n\": 1}\n", i, i
}' >"$dir/jobs.jsonl"
"$bin" --config "$dir/imgbatch.json" enqueue "$dir/jobs.jsonl" --batch unknown >/dev/null

"$bin" --config "$dir/imgbatch.json" run --max-seconds "$seconds" 2>"$dir/run.log"

stats=$(curl -s "http://127.0.0.1:$port/sim/stats")
stat() { echo "$stats" | grep -o "\"$1\": *[0-9]*" | head -1 | grep -o '[0-9]*$'; }
requests=$(stat requests)
refused=$(stat rate_limited)
ok=$(sqlite3 "$dir/imgbatch.db" "SELECT count(*) FROM attempts WHERE outcome = 'ok'")
awk -v ok="$ok" -v rpm="$rpm" -v s="$seconds" -v req="$requests" -v ref="$refused" 'BEGIN {
    rate = rpm / 60
    printf "unknown limit: %d requests succeeded in %d s (%.2f/s, allowed %.2f/s, not configured)\n", ok, s, ok / s, rate
    printf "unknown limit: used %.1f%% of the allowed rate (target >= 90%%)\n", 100 * ok / (s * rate)
    printf "unknown limit: %d of %d requests refused with 429 = %.2f%% (target < 10%%)\n", ref, req, (req > 0 ? 100 * ref / req : 0)
}'
