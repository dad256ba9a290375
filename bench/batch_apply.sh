#!/usr/bin/env bash
# Batch mode: ROWS queued requests (default 50,000) of small images go into one vendor batch
# against the sim (--batch-ms 0, --image-size 16); the daemon runs until idle. Prints the
# time to apply the output and the daemon's peak RSS (VmHWM; target < 128 MiB).
#
# Usage: bench/batch_apply.sh [IMGBATCH_BINARY]
#   env: ROWS=50000
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init batch "${1:-}"
rows=${ROWS:-50000}

start_sim --batch-ms 0 --image-size 16
sim_config 4 600 '"poll_interval_s": 0.2,' \
    ', "mode": "batch", "batch_poll_s": 0.2, "batch_poll_max_s": 1'

"$bin" --config "$dir/imgbatch.json" init >/dev/null
sqlite3 "$dir/imgbatch.db" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
INSERT INTO batches(id, name) VALUES (1, 'batch');
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO jobs(id, batch_id, key, state, prompt, model, provider, n)
SELECT i, 1, 'b' || i, 'queued', 'batch benchmark fox ' || i, 'gpt-image-2', 'sim', 1 FROM c;
INSERT INTO requests(job_id, seq, first_index, provider, n) SELECT id, 0, 0, 'sim', 1 FROM jobs;
COMMIT;
SQL

t0=$(date +%s.%N)
"$bin" --config "$dir/imgbatch.json" run --until-idle 2>"$dir/run.log" &
pid=$!
peak_kb=0
while kill -0 "$pid" 2>/dev/null; do
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [[ -n "$hwm" && "$hwm" -gt "$peak_kb" ]] && peak_kb=$hwm
    sleep 0.2
done
wait "$pid" || echo "batch_apply: run exited with $?" >&2
t1=$(date +%s.%N)

images=$(sqlite3 "$dir/imgbatch.db" "SELECT count(*) FROM outputs")
served=$(curl -s "http://127.0.0.1:$port/sim/stats" | grep -o '"images": *[0-9]*' |
    grep -o '[0-9]*$' || true)
awk -v k="$peak_kb" -v n="$images" -v s="$served" -v a="$t0" -v b="$t1" 'BEGIN {
    printf "batch_apply: %d images kept of %d served in %.1f s; peak RSS (VmHWM) %.1f MiB (target < 128 MiB)\n", n, s, b - a, k / 1024
}'
