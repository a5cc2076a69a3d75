#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# Installs the system packages the tests need when they are missing (Debian, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages used by tests. None yet beyond the Rust toolchain; later issues add
# mosquitto (external-broker mode), postgresql (collector) and chromium (page tests).
NEEDED_PACKAGES=()
missing=()
for pkg in "${NEEDED_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings
cargo test --workspace --locked
