#!/usr/bin/env bash
# Upload benchmark of issue #5, by hand (not in CI):
#  1. backlog drain: a box holding EVENTS events (default 1,000,000: EVENTS/5 orders, each
#     placed then taken to picked up by loadgen --lifecycle while uploading is off) turns
#     uploading on; the time until the collector has acknowledged all of them, box → collector
#     → PostgreSQL, then until its projector has folded them all into the orders tables;
#  2. fleet: SITES simulated boxes (default 200) post RATE events/s each (default 50) for SECS
#     seconds (default 60); batch latency percentiles.
# A throwaway PostgreSQL cluster (fsync on, config/collector-postgresql.conf) on loopback;
# everything stops by itself.
#   EVENTS=1000000 SITES=200 RATE=50 SECS=60 scripts/bench-upload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}; SITES=${SITES:-200}; RATE=${RATE:-50}; SECS=${SECS:-60}
BATCH=${BATCH:-5000}
cargo build --release -q -p orderd -p orderd-collector -p orderd-examples
ROOT=$PWD
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  stop_collector
  rm -rf "$WORK"
}
trap cleanup EXIT
json() { python3 -c "import json,sys;d=json.load(sys.stdin);print($1)"; }
. scripts/collector-lib.sh
start_collector
TOKEN=$SITE_TOKEN

start_box() { # $1 = config file; sets PID HTTP
  HTTP=$(free_port)
  RUST_LOG=warn "$ROOT/target/release/orderd" run --config "$1" --data-dir "$WORK/box" \
    --http-listen "127.0.0.1:$HTTP" --mqtt-listen 127.0.0.1:0 >"$WORK/box.out" 2>&1 &
  PID=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
}
echo "== filling the box with $((EVENTS / 5)) orders, five events each (uploading off)"
printf '' >"$WORK/off.toml"
start_box "$WORK/off.toml"
"$ROOT/target/release/loadgen" --addr "127.0.0.1:$HTTP" --password-file "$WORK/box/initial-admin-password" \
  --clients 32 --orders "$((EVENTS / 5))" --lifecycle --max-secs 1800 | grep -E 'orders|throughput|errors'
kill "$PID"; wait "$PID" || true

cat >"$WORK/on.toml" <<CONF
[upload]
enabled = true
url = "http://127.0.0.1:$CPORT/v1/batches"
batch_events = $BATCH
batch_bytes = 8388608
[upload.token]
value = "$TOKEN"
CONF
echo "== draining: upload on, batches of $BATCH events, LZ4"
start_box "$WORK/on.toml"
T0=$(date +%s.%N)  # the box is ready: its start is not part of the figure
ADMIN=$(curl -s "http://127.0.0.1:$HTTP/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$(cat "$WORK/box/initial-admin-password")\"}" | json 'd["token"]')
# Polled with curl and grep only: a Python start every 0.2 s would take CPU from the drain.
while :; do
  ST=$(curl -s "http://127.0.0.1:$HTTP/api/v1/status" -H "authorization: Bearer $ADMIN")
  ACKED=$(echo "$ST" | grep -o '"acked_seq":[0-9]*' | cut -d: -f2)
  LAST=$(echo "$ST" | grep -o '"event_seq":[0-9]*' | cut -d: -f2)
  [ "$ACKED" = "$LAST" ] && [ "${LAST:-0}" != 0 ] && break
  sleep 0.1
done
T1=$(date +%s.%N)
PSQL="psql -h 127.0.0.1 -p $PGPORT -U orderd -d orderd -qAt"
until [ "$($PSQL -c 'SELECT coalesce(sum(pending_events), 0) FROM report_lag')" = 0 ]; do sleep 0.1; done
T2=$(date +%s.%N)
ROWS=$($PSQL -c "SELECT count(*) || ' events, ' || count(DISTINCT seq) || ' distinct; orders ' || (SELECT count(*) FROM orders) || ', lines ' || (SELECT count(*) FROM order_lines) || ', picked up ' || (SELECT count(*) FROM orders WHERE status = 'picked_up') FROM events")
python3 -c "print(f'drained $LAST events in {($T1-$T0):.1f} s from the box being ready: {$LAST/($T1-$T0):.0f} events/s acknowledged')"
python3 -c "print(f'projected into the orders tables {($T2-$T0):.1f} s from the box being ready: {$LAST/($T2-$T0):.0f} events/s')"
echo "PostgreSQL: $ROWS"
kill "$PID"; wait "$PID" || true

# The drain leaves gigabytes of dirty pages; flushed in the middle of the fleet run they stall
# every commit's WAL flush for a few hundred ms. The fleet is its own scenario: start it clean.
$PSQL -c CHECKPOINT; sync
echo "== fleet: $SITES sites x $RATE events/s for $SECS s"
echo '{' >"$WORK/tokens.json"
for i in $(seq "$SITES"); do
  T=$($COLLECTOR site add "fleet-$i" | tail -n 1)
  sep=$([ "$i" = "$SITES" ] && echo '' || echo ',')
  echo "\"fleet-$i\": \"$T\"$sep" >>"$WORK/tokens.json"
done
echo '}' >>"$WORK/tokens.json"
"$ROOT/target/release/fleetbench" --collector "http://127.0.0.1:$CPORT" --tokens "$WORK/tokens.json" \
  --rate "$RATE" --secs "$SECS"
