#!/usr/bin/env bash
# Live-stream benchmark of issue #6, by hand (not in CI): 500 staff clients follow the event
# stream of a release daemon; 100 status changes are timed to every client; RSS before/after.
# Loopback only; stops by itself.   scripts/bench-sse.sh [CLIENTS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS="${1:-500}"
ROUNDS="${2:-100}"
cargo build --release -q -p orderd -p orderd-collector -p orderd-examples
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n 8192
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
RUST_LOG=warn target/release/orderd run --data-dir "$WORK/data" --http-listen "127.0.0.1:$PORT" \
  --mqtt-listen 127.0.0.1:0 >"$WORK/out" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "API:" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
target/release/ssebench --base "http://127.0.0.1:$PORT" \
  --admin-password-file "$WORK/data/initial-admin-password" --pid "$PID" \
  --clients "$CLIENTS" --rounds "$ROUNDS"
