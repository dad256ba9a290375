#!/usr/bin/env bash
# Memory over a long run: ROWS queued one-image jobs (bulk-inserted with sqlite3), the sim at
# zero latency with 16x16 images, `run` for MAX_SECONDS. Samples the daemon's resident set
# (VmRSS) and the images recorded every INTERVAL seconds and prints the curve; then the RSS
# change from the first sample at or above 10,000 images to the last (target: flat, within a
# few MiB).
#
# Usage: bench/memory_growth.sh [IMGBATCH_BINARY]
#   env: ROWS=1000000 CONCURRENCY=64 MAX_SECONDS=240 INTERVAL=10
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init growth "${1:-}"
rows=${ROWS:-1000000}
concurrency=${CONCURRENCY:-64}
seconds=${MAX_SECONDS:-240}
interval=${INTERVAL:-10}

start_sim --latency-ms 0 --image-size 16

sim_config "$concurrency"

"$bin" --config "$dir/imgbatch.json" init >/dev/null
sqlite3 "$dir/imgbatch.db" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
INSERT INTO batches(id, name) VALUES (1, 'growth');
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO jobs(id, batch_id, key, state, prompt, model, provider, n)
SELECT i, 1, 'g' || i, 'queued', 'memory growth fox ' || i, 'gpt-image-2', 'sim', 1 FROM c;
INSERT INTO requests(job_id, seq, first_index, provider, n) SELECT id, 0, 0, 'sim', 1 FROM jobs;
COMMIT;
SQL

"$bin" --config "$dir/imgbatch.json" run --max-seconds "$seconds" 2>"$dir/run.log" &
pid=$!
t0=$(date +%s)
echo "seconds images rss_mib"
samples=()
while kill -0 "$pid" 2>/dev/null; do
    sleep "$interval"
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n "$rss" ]] || break
    # Images written so far: the files in the batch directory (no read of the busy database).
    images=$(find "$dir/out/growth" -maxdepth 1 -name '*.png' 2>/dev/null | wc -l)
    line="$(($(date +%s) - t0)) $images $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
    echo "$line"
    samples+=("$line")
done
wait "$pid" || echo "memory_growth: run exited with $?" >&2
printf '%s\n' "${samples[@]}" | awk '
    $2 >= 10000 && first == "" { first = $3; fi = $2 }
    { last = $3; li = $2; if ($3 > max) max = $3 }
    END {
        if (first == "") { print "memory_growth: fewer than 10,000 images written"; exit }
        printf "memory_growth: RSS %.1f MiB at %d images, %.1f MiB at %d images: %+.1f MiB (max %.1f MiB)\n", first, fi, last, li, last - first, max
    }'
