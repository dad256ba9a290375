#!/usr/bin/env bash
# `imgbatch report` on a 10,000-image batch: time to build it cold (every thumbnail made)
# and warm (every thumbnail reused), and the time headless Chromium takes to load the page
# and run its script (targets: warm < 5 s, page < 3 s more than an empty page, on 2 cores).
#
# Usage: bench/report.sh [IMGBATCH_BINARY]   (env: JOBS=1000 N=10 IMAGE_SIZE=128)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init report "${1:-}"
jobs=${JOBS:-1000}
n=${N:-10}

start_sim --latency-ms 0 --image-size "${IMAGE_SIZE:-128}"
sim_config 64 60 '"retry": {"max_attempts": 6, "base_delay_s": 0.1, "max_delay_s": 1},'
awk -v jobs="$jobs" -v n="$n" 'BEGIN {
    for (i = 1; i <= jobs; i++)
        printf "{\"key\": \"r%d\", \"prompt\": \"report fox %d\", \"model\": \"gpt-image-2\", \"n\": %d}\n", i, i, n
}' >"$dir/jobs.jsonl"
"$bin" --config "$dir/imgbatch.json" enqueue "$dir/jobs.jsonl" --batch big >/dev/null
"$bin" --config "$dir/imgbatch.json" run --until-idle 2>"$dir/run.log"
images=$(sqlite3 "$dir/imgbatch.db" "SELECT count(*) FROM outputs")

secs() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1; awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'; }
cold=$(secs "$bin" --config "$dir/imgbatch.json" report -o "$dir/report")
warm=$(secs "$bin" --config "$dir/imgbatch.json" report -o "$dir/report")
page=$(du -k "$dir/report/index.html" | cut -f1)
load=$(secs chromium --headless --disable-gpu --no-sandbox --no-first-run --disable-dev-shm-usage \
    --user-data-dir="$dir/chrome" --virtual-time-budget=1000 --dump-dom "file://$dir/report/index.html")
empty=$(secs chromium --headless --disable-gpu --no-sandbox --no-first-run --disable-dev-shm-usage \
    --user-data-dir="$dir/chrome" --virtual-time-budget=1000 --dump-dom "about:blank")
echo "report: $images images; cold $cold s, warm $warm s; index.html ${page} KiB;" \
     "chromium load+script $load s (an empty page: $empty s)"
