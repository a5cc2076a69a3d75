#!/usr/bin/env bash
# Payments benchmark of issue #25, by hand (not in CI): 64 clients record 20,000 payments
# (each with an Idempotency-Key, durable before its answer) against a release daemon; then a
# day of 5,000 settled checks, an X report over it (20 times) and the Z report. Loopback only;
# stops by itself.   scripts/bench-payments.sh [CLIENTS] [PAYMENTS] [DAY_CHECKS]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${1:-64}"
PAYMENTS="${2:-20000}"
DAY="${3:-5000}"
cargo build --release -q -p orderd -p orderd-collector -p orderd-examples
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
# The demo menu's tracked stock would run out; OTP plays no part.
printf '[otp]\nrequired = false\n' > "$WORK/orderd.toml"
RUST_LOG=warn target/release/orderd run --config "$WORK/orderd.toml" --data-dir "$WORK/data" \
  --http-listen "127.0.0.1:$PORT" --mqtt-listen 127.0.0.1:0 >"$WORK/out" 2>&1 &
for _ in $(seq 100); do grep -q "API:" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
echo "orderd $(git rev-parse --short HEAD) on $(date -u +%F), $(nproc) cores"
target/release/paybench --base "http://127.0.0.1:$PORT" \
  --admin-password-file "$WORK/data/initial-admin-password" \
  --clients "$CLIENTS" --payments "$PAYMENTS" --day-checks "$DAY"
