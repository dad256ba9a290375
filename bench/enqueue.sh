#!/bin/sh
# Times `imgbatch enqueue` of a 100,000-line JSONL file into a fresh database and prints the
# seconds. Usage: bench/enqueue.sh [IMGBATCH_BINARY] [LINES]
set -eu
BIN=${1:-${IMGBATCH_BIN:-build/imgbatch}}
LINES=${2:-100000}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
DIR=$(mktemp -d "${TMPDIR:-/tmp}/imgbatch-bench-XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM
cd "$DIR"
cat > imgbatch.json <<'JSON'
{ "database": "bench.db", "output_dir": "out",
  "providers": [{"name": "sim", "api": "openai", "base_url": "http://127.0.0.1:8089/v1",
                 "models": ["gpt-image-1", "dall-e-3"]}] }
JSON
# Mixed lines: keys, sizes, n > per-request maximum (split into several requests), metadata.
awk -v n="$LINES" 'BEGIN {
  for (i = 1; i <= n; i++) {
    if (i % 3 == 0)
      printf "{\"key\":\"job-%d\",\"prompt\":\"a lighthouse at dusk, number %d\",\"model\":\"dall-e-3\",\"n\":2,\"size\":\"1024x1792\",\"quality\":\"hd\"}\n", i, i
    else
      printf "{\"key\":\"job-%d\",\"prompt\":\"a watercolor fox in the snow, variant %d\",\"model\":\"gpt-image-1\",\"n\":%d,\"size\":\"1024x1024\",\"metadata\":{\"row\":%d}}\n", i, i, i % 4 + 1, i
  }
}' > jobs.jsonl
"$BIN" init > /dev/null
START=$(date +%s.%N)
"$BIN" enqueue jobs.jsonl --batch bench > summary.txt
END=$(date +%s.%N)
cat summary.txt >&2
echo "$END $START" | awk '{ printf "%.3f\n", $1 - $2 }'
