#!/usr/bin/env bash
# Rate limiting: the sim refuses more than 600 requests/minute (10/s) with 429; the provider
# is configured with requests_per_minute 600. Runs SECONDS of work and prints the share of
# the allowed rate actually used (target >= 95%) and the share of requests refused with 429
# (target < 1%).
#
# Usage: bench/rate.sh [IMGBATCH_BINARY]   (env: RPM=600 SECONDS_OF_WORK=60 LATENCY_MS=50)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init rate "${1:-}"
rpm=${RPM:-600}
seconds=${SECONDS_OF_WORK:-60}
latency=${LATENCY_MS:-50}

start_sim --latency-ms "$latency" --image-size 16 --rpm "$rpm"

sim_config 16 30 '"retry": {"base_delay_s": 0.5, "max_delay_s": 5},' ", \"requests_per_minute\": $rpm"

# More work than the window can take, so the limiter is the only brake.
jobs=$((rpm * seconds / 60 * 2))
awk -v jobs="$jobs" 'BEGIN {
    for (i = 1; i <= jobs; i++)
        printf "{\"key\": \"r%d\", \"prompt\": \"rate fox %d\", \"model\": \"gpt-image-2\", \"n\": 1}\n", i, i
}' >"$dir/jobs.jsonl"
"$bin" --config "$dir/imgbatch.json" enqueue "$dir/jobs.jsonl" --batch rate >/dev/null

"$bin" --config "$dir/imgbatch.json" run --max-seconds "$seconds" 2>"$dir/run.log"

stats=$(curl -s "http://127.0.0.1:$port/sim/stats")
stat() { echo "$stats" | grep -o "\"$1\": *[0-9]*" | head -1 | grep -o '[0-9]*$'; }
requests=$(stat requests)
refused=$(stat rate_limited)
# The window in which requests were sent: first attempt start to last attempt start.
read -r ok window < <(sqlite3 -separator ' ' "$dir/imgbatch.db" \
    "SELECT count(*), max(started_at) - min(started_at) FROM attempts WHERE outcome = 'ok'")
awk -v ok="$ok" -v w="$window" -v rpm="$rpm" -v s="$seconds" -v req="$requests" -v ref="$refused" 'BEGIN {
    rate = rpm / 60
    printf "rate: %d requests succeeded in %.1f s of sending (%.2f/s, allowed %.2f/s)\n", ok, w, (w > 0 ? (ok - 1) / w : 0), rate
    printf "rate: used %.1f%% of the allowed rate over the window (target >= 95%%)\n", (w > 0 ? 100 * (ok - 1) / (w * rate) : 0)
    printf "rate: used %.1f%% of the allowed rate over the whole %d s run\n", 100 * ok / (s * rate), s
    printf "rate: %d of %d requests refused with 429 = %.2f%% (target < 1%%)\n", ref, req, (req > 0 ? 100 * ref / req : 0)
}'
