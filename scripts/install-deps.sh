#!/usr/bin/env bash
# Installs the Debian 12 packages imgbatch needs to build, test and run. Does nothing when
# they are all present. Run as root, or with sudo available.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libsqlitecpp-dev libsqlite3-dev sqlite3
  libspdlog-dev doctest-dev libssl-dev libcli11-dev libsystemd-dev zlib1g-dev ca-certificates curl
  clang libclang-rt-14-dev
  systemd lintian
  prometheus  # promtool: the metrics and alert rules tests
  libvips-dev chromium
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
