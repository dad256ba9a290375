#!/usr/bin/env bash
# Regenerates docs/report.png, the README's screenshot of `imgbatch report`: a small batch
# against `imgbatch sim` (two API styles, one job the simulator fails, one it refuses), its
# report, and a 1280x1100 headless Chromium screenshot of the page. Needs a build (build/ or
# $BUILD_DIR) and chromium; works in a temporary directory, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BUILD_DIR:-build}/imgbatch")
out=$(realpath docs)/report.png
work=$(mktemp -d /tmp/imgbatch-shot-XXXXXX)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

"$bin" sim --listen 127.0.0.1:0 --port-file sim.port --latency-ms 200 --jitter-ms 300 \
  --image-size 256 2>sim.log &
sim_pid=$!
for _ in $(seq 100); do [ -s sim.port ] && break; sleep 0.1; done
port=$(cat sim.port)

cat >imgbatch.json <<JSON
{
  "database": "imgbatch.db",
  "output_dir": "out",
  "retry": {"max_attempts": 3, "base_delay_s": 0.1, "max_delay_s": 0.5, "moderation_retries": 1},
  "providers": [
    {"name": "openai", "api": "openai", "base_url": "http://127.0.0.1:$port/v1",
     "models": ["gpt-image-2"], "max_concurrency": 4},
    {"name": "gemini", "api": "gemini", "base_url": "http://127.0.0.1:$port/v1beta",
     "models": ["gemini-2.5-flash-image"], "max_concurrency": 4}
  ]
}
JSON
cat >jobs.jsonl <<'JSONL'
{"key": "fox", "prompt": "A red fox in fresh snow at dawn", "model": "gpt-image-2", "n": 4, "size": "1024x1024"}
{"key": "owl", "prompt": "A snowy owl on a birch branch", "model": "gemini-2.5-flash-image", "n": 4}
{"key": "lighthouse", "prompt": "A lighthouse in a storm, oil painting", "model": "gpt-image-2", "n": 1, "size": "1024x1536", "quality": "high"}
{"key": "boats", "prompt": "Fishing boats in a harbour at sunrise", "model": "gpt-image-2", "n": 3}
{"key": "lake", "prompt": "A mountain lake under the stars", "model": "gemini-2.5-flash-image", "n": 2, "aspect_ratio": "16:9"}
{"key": "poster", "prompt": "A poster with tiny unreadable text #fail=invalid", "model": "gpt-image-2", "n": 2}
{"key": "forest", "prompt": "A misty forest path #fail=moderation", "model": "gpt-image-2", "n": 1}
JSONL
export IMGBATCH_CONFIG=$work/imgbatch.json
"$bin" enqueue jobs.jsonl --batch "night-$(date -u +%F)" >/dev/null
"$bin" run --until-idle 2>run.log
"$bin" report -o report >/dev/null
chromium --headless --disable-gpu --no-sandbox --no-first-run --disable-dev-shm-usage \
  --hide-scrollbars --user-data-dir="$work/chrome" --window-size=1280,1100 \
  --virtual-time-budget=5000 --screenshot="$out" "file://$work/report/index.html" 2>/dev/null
echo "wrote $out"
