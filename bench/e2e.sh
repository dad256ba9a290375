#!/usr/bin/env bash
# End-to-end throughput: `imgbatch run --until-idle` against `imgbatch sim` at zero latency
# with 16x16 images; prints images per second (target: >= 2,000/s on 2 cores).
#
# Usage: bench/e2e.sh [IMGBATCH_BINARY]   (env: JOBS=2000 N=10 CONCURRENCY=64)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init e2e "${1:-}"
jobs=${JOBS:-2000}
n=${N:-10}
concurrency=${CONCURRENCY:-64}

start_sim --latency-ms 0 --image-size 16

sim_config "$concurrency" 60 '"retry": {"max_attempts": 6, "base_delay_s": 0.1, "max_delay_s": 1},'

awk -v jobs="$jobs" -v n="$n" 'BEGIN {
    for (i = 1; i <= jobs; i++)
        printf "{\"key\": \"e%d\", \"prompt\": \"benchmark fox %d\", \"model\": \"gpt-image-2\", \"n\": %d}\n", i, i, n
}' >"$dir/jobs.jsonl"
"$bin" --config "$dir/imgbatch.json" enqueue "$dir/jobs.jsonl" --batch e2e >/dev/null

start=$(date +%s.%N)
"$bin" --config "$dir/imgbatch.json" run --until-idle 2>"$dir/run.log"
end=$(date +%s.%N)

images=$(sqlite3 "$dir/imgbatch.db" "SELECT count(*) FROM outputs")
failed=$(sqlite3 "$dir/imgbatch.db" "SELECT count(*) FROM jobs WHERE state != 'succeeded'")
awk -v i="$images" -v w=$((jobs * n)) -v s="$start" -v e="$end" -v f="$failed" 'BEGIN {
    t = e - s
    printf "e2e: %d of %d images in %.2f s = %.0f images/s (target >= 2000); %d jobs not succeeded\n", i, w, t, i / t, f
}'
