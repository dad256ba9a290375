#!/usr/bin/env bash
# End-to-end demo against the built-in simulator: installs what is missing, builds, starts
# `imgbatch sim` on a free loopback port, enqueues examples/prompts.jsonl for four API
# styles, runs the daemon until the queue is empty, and shows status and the export.
# Everything is written under demo/ (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
bin=${BUILD_DIR:-build}/imgbatch
rm -rf demo && mkdir -p demo

"$bin" sim --listen 127.0.0.1:0 --port-file demo/sim.port --latency-ms 50 --jitter-ms 100 \
  2>demo/sim.log &
sim_pid=$!
trap 'kill $sim_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s demo/sim.port ] && break; sleep 0.1; done
port=$(cat demo/sim.port)
echo "== simulator listening on 127.0.0.1:$port"

sed "s/SIM_PORT/$port/g" examples/demo.json > demo/imgbatch.json
export IMGBATCH_CONFIG=demo/imgbatch.json

echo "== imgbatch enqueue examples/prompts.jsonl --batch demo"
"$bin" enqueue examples/prompts.jsonl --batch demo
echo "== imgbatch run --until-idle"
"$bin" run --until-idle 2>demo/run.log
echo "== imgbatch status"
"$bin" status
echo "== imgbatch jobs --batch demo"
"$bin" jobs --batch demo
echo "== imgbatch show (the job the simulator refused)"
"$bin" show "$("$bin" jobs --batch demo --state blocked --json | sed -n 's/.*"id": *\([0-9]*\).*/\1/p' | head -n 1)"
echo "== imgbatch export --batch demo --format jsonl (first 3 records)"
"$bin" export --batch demo --format jsonl -o demo/export.jsonl
head -n 3 demo/export.jsonl
echo "== images written:"
find demo/out -type f | sort | head -n 20
echo "($(find demo/out -type f | wc -l) files; daemon log in demo/run.log)"
