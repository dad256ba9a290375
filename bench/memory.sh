#!/usr/bin/env bash
# Memory under a deep queue: 1,000,000 queued requests (bulk-inserted with sqlite3), sim
# latency 2 s, max_concurrency 500; runs the daemon for MAX_SECONDS and samples its peak RSS
# (VmHWM); prints MiB (target: < 64 MiB).
#
# Usage: bench/memory.sh [IMGBATCH_BINARY]
#   env: ROWS=1000000 CONCURRENCY=500 LATENCY_MS=2000 MAX_SECONDS=20
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init mem "${1:-}"
rows=${ROWS:-1000000}
concurrency=${CONCURRENCY:-500}
latency=${LATENCY_MS:-2000}
seconds=${MAX_SECONDS:-20}

start_sim --latency-ms "$latency" --image-size 16

sim_config "$concurrency"

# The fast path: the schema from `imgbatch init`, then one bulk transaction of queued jobs
# with one request each (what enqueue would store, without parsing a file).
"$bin" --config "$dir/imgbatch.json" init >/dev/null
t0=$(date +%s.%N)
sqlite3 "$dir/imgbatch.db" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
INSERT INTO batches(id, name) VALUES (1, 'memory');
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO jobs(id, batch_id, key, state, prompt, model, provider, n)
SELECT i, 1, 'm' || i, 'queued', 'memory benchmark fox ' || i, 'gpt-image-2', 'sim', 1 FROM c;
INSERT INTO requests(job_id, seq, first_index, provider, n) SELECT id, 0, 0, 'sim', 1 FROM jobs;
COMMIT;
SQL
t1=$(date +%s.%N)
awk -v r="$rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "memory: %d queued requests inserted in %.1f s\n", r, b - a }'

"$bin" --config "$dir/imgbatch.json" run --max-seconds "$seconds" 2>"$dir/run.log" &
pid=$!
peak_kb=0
max_inflight=0
while kill -0 "$pid" 2>/dev/null; do
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n "$hwm" && "$hwm" -gt "$peak_kb" ]] && peak_kb=$hwm
    inflight=$(curl -s "http://127.0.0.1:$port/sim/stats" | grep -o '"in_flight": *[0-9]*' |
        grep -o '[0-9]*$' || true)
    [[ -n "$inflight" && "$inflight" -gt "$max_inflight" ]] && max_inflight=$inflight
    sleep 0.5
done
wait "$pid" || echo "memory: run exited with $?" >&2

done_images=$(sqlite3 "$dir/imgbatch.db" "SELECT count(*) FROM outputs")
awk -v k="$peak_kb" -v m="$max_inflight" -v d="$done_images" -v s="$seconds" 'BEGIN {
    printf "memory: peak RSS (VmHWM) %.1f MiB (target < 64 MiB); max in flight %d; %d images in %d s\n", k / 1024, m, d, s
}'

# Optionally, the peak RSS of `imgbatch enqueue` too (target < 128 MiB for 1,000,000 lines):
# ENQUEUE_LINES=1000000 bench/memory.sh. See bench/enqueue.sh.
if [[ "${ENQUEUE_LINES:-0}" -gt 0 ]]; then
    LINES=$ENQUEUE_LINES MODES="file stdin" "$(dirname "$0")/enqueue.sh" "$bin"
fi
