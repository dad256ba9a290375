#!/usr/bin/env bash
# Configures and builds imgbatch into build/ (or $BUILD_DIR) with Ninja, 2 jobs, ccache.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} >/dev/null
cmake --build "$build_dir" -j "${JOBS:-2}"
