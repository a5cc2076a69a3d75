#!/usr/bin/env bash
# Reproduces the figures in docs/BENCHMARKS.md. Run by hand, not in CI:
#   scripts/bench.sh            # 200k orders at 64 clients, 5k at 1 client, cold start with 1M
#   ORDERS=20000 COLD=0 scripts/bench.sh   # a quick run
# Loopback only; every step is bounded and the daemon is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${ORDERS:-200000}
CLIENTS=${CLIENTS:-64}
SINGLE=${SINGLE:-5000}
COLD=${COLD:-1000000}

cargo build --release -q -p orderd -p orderd-examples
BIN=./target/release/orderd
LOADGEN=./target/release/loadgen
DIR=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

now_ms() { date +%s%3N; }

# Starts the daemon; sets PID, ADDR and START_MS (time to its printed, ready state).
start_daemon() {
  : > "$DIR/out.log"
  local t0; t0=$(now_ms)
  RUST_LOG=warn "$BIN" run --data-dir "$DIR/data" --http-listen 127.0.0.1:0 > "$DIR/out.log" 2> "$DIR/err.log" &
  PID=$!
  for _ in $(seq 1 6000); do
    if grep -q 'API:' "$DIR/out.log"; then break; fi
    sleep 0.005
  done
  START_MS=$(( $(now_ms) - t0 ))
  ADDR=$(sed -n 's#^ *API: *http://\([^/]*\)/api/v1/.*#\1#p' "$DIR/out.log" | head -1)
  [ -n "$ADDR" ] || { cat "$DIR/err.log"; exit 1; }
}
stop_daemon() { kill -TERM "$PID"; wait "$PID" || true; PID=; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN" --version

start_daemon
sleep 2
echo "== idle after first start: RSS $(rss_mb "$PID") MB, start-up ${START_MS} ms (includes creating the admin)"
PW="$DIR/data/initial-admin-password"
STORE="$DIR/data/orderd.redb"

echo "== $ORDERS orders, $CLIENTS clients"
"$LOADGEN" --addr "$ADDR" --password-file "$PW" --clients "$CLIENTS" --orders "$ORDERS" --pid "$PID" --store-file "$STORE"
echo "== $SINGLE orders, 1 client"
"$LOADGEN" --addr "$ADDR" --password-file "$PW" --clients 1 --orders "$SINGLE" --pid "$PID"
TOTAL=$((ORDERS + SINGLE))
BYTES=$(stat -c %s "$STORE")
echo "== store: $BYTES bytes for $TOTAL orders = $((BYTES / TOTAL)) bytes/order"

if [ "$COLD" -gt "$TOTAL" ]; then
  echo "== filling to $COLD orders"
  "$LOADGEN" --addr "$ADDR" --password-file "$PW" --clients "$CLIENTS" --orders $((COLD - TOTAL)) | grep -E 'orders|throughput|errors'
  TOTAL=$COLD
fi
stop_daemon
if [ "$COLD" -gt 0 ]; then
  for i in 1 2 3; do
    start_daemon
    echo "== cold start with $TOTAL orders stored (run $i): ${START_MS} ms to ready"
    sleep 2
    [ "$i" = 3 ] && echo "== idle RSS with $TOTAL orders stored: $(rss_mb "$PID") MB"
    stop_daemon
  done
  echo "== store: $(stat -c %s "$STORE") bytes for $TOTAL orders"
fi
