#!/usr/bin/env bash
# `imgbatch enqueue` of a large JSONL file into a fresh database, three ways: a file, the same
# file with --strict (one transaction for everything), and standard input through a pipe.
# For each prints the wall time, lines/s, peak RSS (VmHWM, sampled from /proc every 0.1 s)
# and the CPU time used. Targets: >= 50,000 lines/s and < 128 MiB for 1,000,000 lines.
#
# Usage: bench/enqueue.sh [IMGBATCH_BINARY]
#   env: LINES=1000000 MODES="file strict stdin"
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init enqueue "${1:-}"
lines=${LINES:-1000000}
modes=${MODES:-file strict stdin}
cd "$dir"
cat >imgbatch.json <<'JSON'
{ "database": "bench.db", "output_dir": "out",
  "providers": [{"name": "sim", "api": "openai", "base_url": "http://127.0.0.1:9/v1",
                 "models": ["gpt-image-2"]},
                {"name": "gem", "api": "gemini", "base_url": "http://127.0.0.1:9/v1beta",
                 "models": ["gemini-2.5-flash-image"]}] }
JSON
# Mixed lines: keys, sizes, n > per-request maximum (split into several requests), metadata.
awk -v n="$lines" 'BEGIN {
  for (i = 1; i <= n; i++) {
    if (i % 3 == 0)
      printf "{\"key\":\"job-%d\",\"prompt\":\"a lighthouse at dusk, number %d\",\"model\":\"gemini-2.5-flash-image\",\"n\":2,\"aspect_ratio\":\"9:16\"}\n", i, i
    else
      printf "{\"key\":\"job-%d\",\"prompt\":\"a watercolor fox in the snow, variant %d\",\"model\":\"gpt-image-2\",\"n\":%d,\"size\":\"1024x1024\",\"metadata\":{\"row\":%d}}\n", i, i, i % 4 + 1, i
  }
}' >jobs.jsonl
ticks=$(getconf CLK_TCK)

# measure MODE: enqueue jobs.jsonl into a fresh database that way; prints one line.
measure() {
    local mode=$1 pid peak=0 cpu=0 key value rest stat t0 t1
    rm -f bench.db bench.db-wal bench.db-shm
    "$bin" --config imgbatch.json init >/dev/null
    t0=$(date +%s.%N)
    case $mode in
        file) "$bin" --config imgbatch.json enqueue jobs.jsonl --batch b >summary.txt 2>err.txt & ;;
        strict) "$bin" --config imgbatch.json enqueue jobs.jsonl --batch b --strict \
            >summary.txt 2>err.txt & ;;
        stdin) cat jobs.jsonl | "$bin" --config imgbatch.json enqueue - --batch b \
            >summary.txt 2>err.txt & ;;
    esac
    pid=$!  # the last command of a pipeline: imgbatch
    while [[ -r /proc/$pid/status ]]; do
        while read -r key value rest; do
            [[ $key == VmHWM: && $value -gt $peak ]] && peak=$value
        done </proc/$pid/status 2>/dev/null || true
        # utime + stime (fields 14 and 15), in clock ticks
        stat=$(cat /proc/$pid/stat 2>/dev/null || true)
        if [[ -n "$stat" ]]; then
            set -- ${stat##*) }
            [[ $# -ge 13 ]] && cpu=$((${12} + ${13}))
        fi
        sleep 0.1
    done
    wait "$pid" || { echo "enqueue $mode: exit $?: $(tail -3 err.txt)" >&2; }
    t1=$(date +%s.%N)
    local stored
    stored=$(sqlite3 bench.db "SELECT count(*) FROM jobs")
    awk -v m="$mode" -v n="$lines" -v s="$stored" -v a="$t0" -v b="$t1" -v k="$peak" \
        -v c="$cpu" -v t="$ticks" 'BEGIN {
        printf "enqueue %-6s: %d lines in %.1f s: %.0f lines/s, peak RSS %.1f MiB, cpu %.1f s (%d jobs stored)\n",
            m, n, b - a, n / (b - a), k / 1024, c / t, s
    }'
}

echo "enqueue: $lines lines, $(du -m jobs.jsonl | cut -f1) MB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $modes; do measure "$mode"; done
echo "enqueue: targets >= 50000 lines/s, peak RSS < 128 MiB"
