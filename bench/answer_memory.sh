#!/usr/bin/env bash
# Memory for one large answer: a single job whose answer holds N images of SIZE x SIZE
# (stored PNG, 3 bytes a pixel, base64 in JSON), run with `run --until-idle`; prints the
# answer's size and the peak RSS (GNU time's maximum resident set) of the run, and the same
# run with tiny images as the baseline. Target: peak - baseline near one copy of the answer.
#
# SHAPE=chat: the same images as inline data URIs in a chat-completion shaped answer
# (choices[0].message.content, markdown), as relays answer the images endpoint; SHAPE=chat-api:
# the same answer from a relay's /chat/completions (api "openai-chat").
#
# Usage: bench/answer_memory.sh [IMGBATCH_BINARY]
#   env: SIZE=1900 N=2 SHAPE=images|chat|chat-api
set -euo pipefail

. "$(dirname "$0")/lib.sh"
bench_init answer-memory "${1:-}"
size=${SIZE:-1900}
n=${N:-2}
case ${SHAPE:-images} in
images) directives="" api=openai per_answer=$n ;;
chat) directives="#chatshape #datauri " api=openai per_answer=$n ;;
chat-api) directives="#datauri " api=openai-chat per_answer=1 ;; # one image a call
*) echo "SHAPE must be images, chat or chat-api" >&2; exit 2 ;;
esac
[[ -x /usr/bin/time ]] || { echo "GNU time (/usr/bin/time) is needed" >&2; exit 2; }

# peak_kb IMAGE_SIZE: the peak RSS in KiB of a run that fetches one answer of that size.
peak_kb() {
    local image=$1 work="$dir/run-$1"
    mkdir -p "$work"
    rm -f "$dir/port"
    start_sim --image-size "$image"
    cat >"$work/imgbatch.json" <<JSON
{
  "database": "$work/imgbatch.db",
  "output_dir": "$work/out",
  "poll_interval_s": 0.1,
  "providers": [
    {"name": "sim", "api": "$api", "base_url": "http://127.0.0.1:$port/v1",
     "models": ["gpt-image-2"], "max_concurrency": 1, "timeout_s": 120}
  ]
}
JSON
    echo "{\"prompt\": \"${directives}one large answer\", \"model\": \"gpt-image-2\", \"n\": $n}" |
        "$bin" --config "$work/imgbatch.json" enqueue - --batch big >/dev/null
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/imgbatch.json" run \
        --until-idle 2>/dev/null
    kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
    sim_pid=""
    local files
    files=$(find "$work/out" -name '*.png' | wc -l)
    [[ "$files" -eq "$n" ]] || { echo "answer-memory: $files of $n images written" >&2; exit 1; }
    cat "$work/rss"
}

base=$(peak_kb 16)
peak=$(peak_kb "$size")
# The answer: n stored PNGs of size^2 * 3 bytes (plus a filter byte per row), base64.
answer=$(awk -v s="$size" -v n="$per_answer" 'BEGIN { printf "%.1f", n * (s * (3 * s + 1)) * 4 / 3 / 1e6 }')
awk -v shape="${SHAPE:-images}" -v a="$answer" -v b="$base" -v p="$peak" 'BEGIN {
    printf "answer-memory (%s): answer %.1f MB, peak RSS %.1f MiB, baseline %.1f MiB, " \
           "above baseline %.1f MiB (%.2f copies of the answer)\n",
           shape, a, p / 1024, b / 1024, (p - b) / 1024, (p - b) * 1024 / (a * 1e6) }'
