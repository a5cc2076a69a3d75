#!/usr/bin/env bash
# The order engine's figures (docs/BENCHMARKS.md), re-run, not remembered. By hand, not in CI:
#   scripts/bench.sh                        # everything on: 100,000 orders at 64 clients, …
#   ORDERS=20000 SLOW_ORDERS=200 scripts/bench.sh   # a quick run
#   COLD=1000000 scripts/bench.sh           # also the cold start with a million orders stored
# Everything on, as a restaurant runs it: the embedded broker and kitchen hub, one display per
# station (grill, cold, bar; examples/kitchen-sim), every order with a line for each station and
# left open (ORDERS open orders at the end), and the uploader sending every event to a real
# orderd-collector on a throwaway PostgreSQL. Then 1 client alone, the RSS after the run, and
# the slow card: the daemon pinned to one core with SLOW_MS added to every sync (an SD card's
# fsync), 1 client. It prints one summary table with the targets, the commit and the date.
# The daemon runs with the environment the unit gives it (Environment= in systemd/orderd.service).
# Loopback only; every step is bounded and everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${ORDERS:-100000}
CLIENTS=${CLIENTS:-64}
SINGLE=${SINGLE:-5000}
SLOW_MS=${SLOW_MS:-10}
SLOW_ORDERS=${SLOW_ORDERS:-1000}
COLD=${COLD:-0}

true
BIN=$PWD/target/prof/release/orderd
LOADGEN=$PWD/target/release/loadgen
SIM=$PWD/target/release/kitchen-sim
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  kill $(jobs -p) 2>/dev/null || true
  stop_collector
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
. scripts/collector-lib.sh

COMMIT=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- daemon plugins protocol examples vendor Cargo.lock || COMMIT="$COMMIT+changes"
DATE=$(date -u +%Y-%m-%d)
now_ms() { date +%s%3N; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
field() { sed -n "s/^$1 *//p" "$2"; }   # a line of loadgen's output, without its label
# The daemon runs with the unit's environment (glibc's allocator settings), as on the box.
UNIT_ENV=$(sed -n 's/^Environment=//p' systemd/orderd.service | tr '\n' ' ')
# CPU ticks (1/100 s) used so far by each of the daemon's threads, summed by thread name.
cpu_ticks() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}

# Starts the daemon on $1 (data dir) with config $2 and extra command words ($3…); sets PID, ADDR,
# START_MS (to its printed, ready state).
start_daemon() {
  local data=$1 config=$2
  shift 2
  : >"$WORK/out.log"
  local t0
  t0=$(now_ms)
  env $UNIT_ENV RUST_LOG=warn "$@" "$BIN" run --config "$config" --data-dir "$data" --http-listen 127.0.0.1:0 \
    --mqtt-listen "127.0.0.1:$MQTT_PORT" >"$WORK/out.log" 2>"$WORK/err.log" &
  PID=$!
  for _ in $(seq 1 6000); do
    grep -q 'API:' "$WORK/out.log" && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/err.log" >&2; exit 1; }
    sleep 0.005
  done
  START_MS=$(($(now_ms) - t0))
  ADDR=$(sed -n 's#^ *API: *http://\([^/]*\)/api/v1/.*#\1#p' "$WORK/out.log" | head -1)
  [ -n "$ADDR" ] || { cat "$WORK/err.log" >&2; exit 1; }
}
stop_daemon() { kill -TERM "$PID"; wait "$PID" || true; PID=; }
# Waits until the uploader has had every event acknowledged (at most 120 s).
wait_uploaded() {
  local token st acked last
  token=$(curl -s "http://$ADDR/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$(cat "$1/initial-admin-password")\"}" \
    | sed 's/.*"token":"\([^"]*\)".*/\1/')
  for _ in $(seq 1 1200); do
    st=$(curl -s "http://$ADDR/api/v1/status" -H "authorization: Bearer $token")
    acked=$(grep -o '"acked_seq":[0-9]*' <<<"$st" | cut -d: -f2)
    last=$(grep -o '"event_seq":[0-9]*' <<<"$st" | cut -d: -f2)
    [ -n "$last" ] && [ "$acked" = "$last" ] && { echo "$last"; return; }
    sleep 0.1
  done
  echo "not caught up: $acked of $last"
}

echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$BIN" --version
echo "commit $COMMIT, $DATE"

echo "== collector (PostgreSQL on loopback)"
start_collector
MQTT_PORT=$(free_port)
DATA=$WORK/data
cat >"$WORK/on.toml" <<CONF
[upload]
enabled = true
url = "http://127.0.0.1:$CPORT/v1/batches"
[upload.token]
value = "$SITE_TOKEN"
CONF
# One display per station, registered before the first start.
declare -A PASS
for st in grill cold bar; do
  PASS[$st]=$("$BIN" device add "d-$st" --kind display --station "$st" --config "$WORK/on.toml" \
    --data-dir "$DATA" 2>/dev/null | sed -n 's/.*password: //p')
done

start_daemon "$DATA" "$WORK/on.toml"
for st in grill cold bar; do
  "$SIM" --port "$MQTT_PORT" --id "d-$st" --password "${PASS[$st]}" display --station "$st" \
    >"$WORK/display-$st.log" 2>&1 &
done
sleep 2
IDLE_RSS=$(rss_mb "$PID")
echo "== idle: RSS $IDLE_RSS MB, start-up ${START_MS} ms; 3 displays, uploader on"
PW=$DATA/initial-admin-password

echo "== $ORDERS orders, $CLIENTS clients, everything on"
cpu_ticks "$PID" >"$WORK/cpu0"; perf record -F 499 --call-graph dwarf,16384 -o /tmp/perf.data -p "$PID" -- sleep 4 >/dev/null 2>&1 &
"$LOADGEN" --addr "$ADDR" --password-file "$PW" --clients "$CLIENTS" --orders "$ORDERS" \
  --pid "$PID" --store-file "$DATA/orderd.redb" | tee "$WORK/load.txt"
cpu_ticks "$PID" >"$WORK/cpu1"
# Where the time goes: CPU per order of each kind of thread (the writer; tokio's workers, which
# run HTTP, the kitchen hub and the uploader; rumqttd's router; the main thread).
WHERE=$(join -a 2 -e 0 -o 0,1.2,2.2 "$WORK/cpu0" "$WORK/cpu1" \
  | awk -v n="$ORDERS" '{us = ($3 - $2) * 10000 / n; t += us; printf "%s %.0f µs, ", $1, us} END {printf "in all %.0f µs", t}')
echo "CPU per order: $WHERE"
echo "== $SINGLE orders, 1 client"
"$LOADGEN" --addr "$ADDR" --password-file "$PW" --clients 1 --orders "$SINGLE" --pid "$PID" \
  | tee "$WORK/single.txt"
TOTAL=$((ORDERS + SINGLE))
UPLOADED=$(wait_uploaded "$DATA")
sleep 5
AFTER_RSS=$(rss_mb "$PID")
echo "== after the run, $TOTAL orders open: RSS $AFTER_RSS MB; uploaded through event $UPLOADED"
BYTES=$(stat -c %s "$DATA/orderd.redb")
stop_daemon

if [ "$COLD" -gt "$TOTAL" ]; then
  start_daemon "$DATA" "$WORK/on.toml"
  echo "== filling to $COLD orders"
  "$LOADGEN" --addr "$ADDR" --password-file "$PW" --clients "$CLIENTS" --orders $((COLD - TOTAL)) \
    --max-secs 1800 | grep -E 'orders|throughput|errors'
  stop_daemon
  for i in 1 2 3; do
    start_daemon "$DATA" "$WORK/on.toml"
    echo "== cold start with $COLD orders stored (run $i): ${START_MS} ms to ready"
    COLD_MS=$START_MS
    stop_daemon
  done
fi

wait; exit 0
SLOW=$WORK/slow
printf '' >"$WORK/off.toml"
start_daemon "$SLOW" "$WORK/off.toml" taskset -c 0 env ORDERD_BENCH_SYNC_DELAY_MS="$SLOW_MS"
taskset -c 1 "$LOADGEN" --addr "$ADDR" --password-file "$SLOW/initial-admin-password" --clients 1 \
  --orders "$SLOW_ORDERS" | tee "$WORK/slow.txt"
stop_daemon

lat() { field 'latency ms' "$1" | awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }
LOAD_TPUT=$(field throughput "$WORK/load.txt" | cut -d' ' -f1)
LOAD_P99=$(lat "$WORK/load.txt" p99)
LOAD_ERR=$(field 'errors (non-2xx)' "$WORK/load.txt")
LOAD_PEAK=$(field 'daemon RSS' "$WORK/load.txt" | sed 's/.*peak \([0-9.]*\).*/\1/')
SINGLE_P50=$(lat "$WORK/single.txt" p50)
SLOW_P50=$(lat "$WORK/slow.txt" p50)
SLOW_P90=$(lat "$WORK/slow.txt" p90)
SLOW_P99=$(lat "$WORK/slow.txt" p99)

echo
echo "== summary: commit $COMMIT, $DATE, $(nproc) cores; load generator on the same machine"
printf '| %-58s | %-22s | %-22s |\n' figure measured target
printf '| %-58s | %-22s | %-22s |\n' "$(printf -- '-%.0s' {1..58})" "$(printf -- '-%.0s' {1..22})" "$(printf -- '-%.0s' {1..22})"
row() { printf '| %-58s | %-22s | %-22s |\n' "$1" "$2" "$3"; }
row "$CLIENTS clients, $ORDERS orders, everything on: throughput" "$LOAD_TPUT orders/s" ">= 12000 orders/s"
row "  p99 latency" "$LOAD_P99 ms" "<= 15 ms"
row "  errors" "$LOAD_ERR" "0"
row "  peak RSS during the load" "$LOAD_PEAK MB" "<= 64 MB"
row "RSS after the run, $TOTAL orders open" "$AFTER_RSS MB" "<= 32 MB"
row "1 client, $SINGLE orders: p50" "$SINGLE_P50 ms" "<= 0.6 ms"
row "slow card (+$SLOW_MS ms per sync, 1 core), 1 client: p50" "$SLOW_P50 ms" "one sync (~$SLOW_MS ms)"
row "  p90 / p99" "$SLOW_P90 / $SLOW_P99 ms" "< two syncs ($((2 * SLOW_MS)) ms)"
row "idle RSS after start / start-up" "$IDLE_RSS MB / $START_MS ms" ""
row "store" "$((BYTES / TOTAL)) bytes/order" "<= 1 KB"
row "uploaded to the collector" "through event $UPLOADED" "every event"
echo
echo "CPU per order in the daemon, by thread, during the $CLIENTS-client load: $WHERE"
[ -n "${COLD_MS:-}" ] && row "cold start, $COLD orders stored" "$COLD_MS ms" ""
true
