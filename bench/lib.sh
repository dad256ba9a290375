# Shared by the bench scripts (sourced): find the imgbatch binary, make a work directory,
# start `imgbatch sim` on a free loopback port, and clean both up at exit.

# bench_init NAME [BINARY]: sets $bin (BINARY, else $IMGBATCH_BIN, else build/imgbatch) and
# $dir (a fresh temporary directory under $BENCH_TMPDIR, default /tmp: the file system the
# database and the images are written to).
bench_init() {
    local name=$1
    bin=${2:-${IMGBATCH_BIN:-}}
    if [[ -z "$bin" ]]; then
        local b="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../build/imgbatch"
        [[ -x "$b" ]] && bin=$b
    fi
    [[ -x "${bin:-}" ]] || { echo "imgbatch binary not found; pass its path" >&2; exit 2; }
    dir=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/imgbatch-$name-XXXXXX")
    sim_pid=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    [[ -n "$sim_pid" ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    rm -rf "$dir"
}

# start_sim ARGS...: `imgbatch sim` with ARGS on 127.0.0.1; sets $sim_pid and $port.
start_sim() {
    "$bin" sim --listen 127.0.0.1:0 --port-file "$dir/port" "$@" 2>"$dir/sim.log" &
    sim_pid=$!
    for _ in $(seq 200); do [[ -s "$dir/port" ]] && break; sleep 0.05; done
    port=$(cat "$dir/port")
}

# sim_config CONCURRENCY [TIMEOUT_S] [TOP_FIELDS] [PROVIDER_FIELDS]: writes $dir/imgbatch.json,
# one `openai` provider "sim" serving gpt-image-2 from the started sim. TOP_FIELDS and
# PROVIDER_FIELDS are extra JSON members (each ending with a comma / starting with one).
sim_config() {
    local concurrency=$1 timeout=${2:-60} top=${3:-} provider=${4:-}
    cat >"$dir/imgbatch.json" <<JSON
{
  "database": "$dir/imgbatch.db",
  "output_dir": "$dir/out",
  "shutdown_grace_s": 5,
  $top
  "providers": [
    {"name": "sim", "api": "openai", "base_url": "http://127.0.0.1:$port/v1",
     "models": ["gpt-image-2"], "max_concurrency": $concurrency, "timeout_s": $timeout$provider}
  ]
}
JSON
}
