#!/usr/bin/env bash
# Paid capacity used, side by side with what the disk allows, in one run:
#  1. the disk's bound: bench_fsync_bench writes and fsyncs FILES small files from 4 threads
#     in the same file system as the outputs (files/s);
#  2. zero latency: FILES one-image jobs through `run --until-idle` (images/s, and the share
#     of the disk's bound; target >= 80%);
#  3. high latency: SLOW_JOBS one-image jobs, SLOW_CONCURRENCY calls allowed in flight, the sim
#     answering after LATENCY_MS: wall time against the ideal
#     ceil(SLOW_JOBS / SLOW_CONCURRENCY) * latency (target within 1.05x).
# Also prints the daemon's peak RSS of each run (GNU time is not needed: VmHWM is sampled) and
# the CPU time (user + system) of the daemon and of the sim during each run.
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
disk=$("$fsync_bin" "$dir/fsync" "$files" 4 | tee /dev/stderr | awk '/ files\/s$/ {print $(NF-1)}')
# The fsync bench's files are removed at the end, not here: on ext4 without a journal (this
# machine's root file system) every inode created in the next 30 s (dirty_expire_centisecs)
# skips each recently deleted inode of its group, one buffer lookup apiece, which took 45% of
# the daemon's CPU in the run that followed (perf: recently_deleted in __ext4_new_inode).

# cpu_ticks PID: user and system clock ticks of a live process ("0 0" once it is gone).
cpu_ticks() {
    awk '{print $14, $15}' "/proc/$1/stat" 2>/dev/null || echo "0 0"
}

# run_case NAME JOBS CONCURRENCY LATENCY_MS: prints "seconds images peak_kib daemon_user
# daemon_sys sim_user sim_sys" (CPU in clock ticks).
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
    local start end peak=0 hwm daemon_cpu="0 0" sim_cpu="0 0" sim_start cpu
    sim_start=$(cpu_ticks "$sim_pid")
    start=$(date +%s.%N)
    ${RUN_WRAP:-} "$bin" --config "$d/imgbatch.json" run --until-idle 2>"$d/run.log" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n "$hwm" && "$hwm" -gt "$peak" ]] && peak=$hwm
        cpu=$(cpu_ticks "$pid")
        [[ "$cpu" != "0 0" ]] && daemon_cpu=$cpu
        sleep 0.05
    done
    wait "$pid" || echo "throughput: $name run exited with $?" >&2
    end=$(date +%s.%N)
    sim_cpu=$(cpu_ticks "$sim_pid" | awk -v s="$sim_start" 'BEGIN { split(s, a, " ") }
        { print $1 - a[1], $2 - a[2] }')
    kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
    rm -f "$dir/port"
    local images
    images=$(sqlite3 "$d/imgbatch.db" "SELECT count(*) FROM outputs")
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f ", e - s }'
    echo "$images $peak $daemon_cpu $sim_cpu"
}

tck=$(getconf CLK_TCK)
read -r t images peak du ds su ss < <(run_case fast "$files" "$concurrency" 0)
awk -v t="$t" -v i="$images" -v d="$disk" -v p="$peak" -v f="$files" 'BEGIN {
    printf "zero latency: %d of %d images in %.2f s = %.0f images/s = %.0f%% of the disk bound %.0f files/s (target >= 80%%); peak RSS %.1f MiB\n", i, f, t, i / t, 100 * i / t / d, d, p / 1024
}'
awk -v t="$t" -v k="$tck" -v n="$(nproc)" -v du="$du" -v ds="$ds" -v su="$su" -v ss="$ss" 'BEGIN {
    printf "zero latency CPU: daemon %.2f s user + %.2f s system, sim %.2f s user + %.2f s system (%.0f%% of %d cores over %.2f s)\n", du / k, ds / k, su / k, ss / k, 100 * (du + ds + su + ss) / k / (n * t), n, t
}'
# The machine's CPU bound: what the daemon and the sim spent per image, over all cores. When
# it is below the disk's bound, no pipelining can reach the disk's rate on this machine.
awk -v t="$t" -v i="$images" -v d="$disk" -v k="$tck" -v n="$(nproc)" -v du="$du" -v ds="$ds" \
    -v su="$su" -v ss="$ss" 'BEGIN {
    if (i == 0) exit
    dc = (du + ds) / k / i; sc = (su + ss) / k / i; cpu = n / (dc + sc)
    b = cpu < d ? cpu : d
    printf "zero latency CPU bound: daemon %.0f us + sim %.0f us an image = %.0f images/s on %d cores; bound min(disk, CPU) = %.0f/s (%s), the run reached %.0f%% of it\n", dc * 1e6, sc * 1e6, cpu, n, b, cpu < d ? "CPU" : "disk", 100 * i / t / b
}'
[[ "$slow_jobs" -gt 0 ]] || exit 0
read -r t images peak du ds su ss < <(run_case slow "$slow_jobs" "$slow_concurrency" "$latency")
awk -v t="$t" -v i="$images" -v j="$slow_jobs" -v c="$slow_concurrency" -v l="$latency" -v p="$peak" 'BEGIN {
    rounds = int((j + c - 1) / c); ideal = rounds * l / 1000
    printf "high latency: %d of %d images, %d in flight, %d ms: %.2f s against an ideal %.1f s = %.3fx (target <= 1.05x); peak RSS %.1f MiB\n", i, j, c, l, t, ideal, t / ideal, p / 1024
}'
