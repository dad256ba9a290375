#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit + integration) with
# ctest. Extra arguments go to ctest (e.g. -L unit, -R store).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-2}" "$@"
