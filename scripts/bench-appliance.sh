#!/usr/bin/env bash
# Appliance benchmark of issue #7, by hand (not in CI): the stripped release binary's size
# (x86_64, and aarch64 when cross-built: scripts/package.sh --arm64), cold start to READY=1,
# and idle CPU and wake-ups. Loopback only; stops by itself.
#   scripts/bench-appliance.sh [STARTS] [IDLE_SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
STARTS="${1:-20}"
IDLE="${2:-60}"
cargo build --release -q --locked -p orderd -p orderd-collector -p orderd-examples
size() { printf '%-42s %6.2f MiB (%s bytes)\n' "$1" "$(echo "$(stat -c %s "$1") / 1048576" | bc -l)" "$(stat -c %s "$1")"; }
echo "stripped release binaries ($(rustc --version)):"
size target/release/orderd
file -b target/release/orderd | cut -d, -f1-2
if [ -f target/aarch64-unknown-linux-gnu/release/orderd ]; then
  size target/aarch64-unknown-linux-gnu/release/orderd
  file -b target/aarch64-unknown-linux-gnu/release/orderd | cut -d, -f1-2
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
target/release/appliancebench --starts "$STARTS" --idle-secs "$IDLE"
