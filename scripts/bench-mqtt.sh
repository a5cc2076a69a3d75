#!/usr/bin/env bash
# MQTT benchmark of issue #3, by hand (not in CI): tickets at 200 orders/s to 50 devices through
# the embedded broker, then the same through Debian's Mosquitto (external-broker mode), then the
# broker's idle cost and 500 idle devices. Loopback only; every run stops by itself.
#   scripts/bench-mqtt.sh [SECONDS] [PART...]   (default 600 s, the issue's 10 minutes)
# PARTs: emb (load, embedded broker), net (the same load with 20 network printers the box
# drives, emulated on loopback, instead of MQTT printers), idle (the broker's idle cost), ext
# (load through Mosquitto), idle500 (500 idle devices); all but net by default.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-600}"
PARTS="${*:2}"
PARTS="${PARTS:-emb idle ext idle500}"
want() { [[ " $PARTS " == *" $1 "* ]]; }
cargo build --release -q -p orderd -p orderd-collector -p orderd-examples
BIN=target/release/orderd
BENCH=target/release/mqttbench
WORK=$(mktemp -d)
# KEEP_LOGS=DIR keeps the daemons' logs (*.out) there.
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS" && cp "$WORK"/*.out "$KEEP_LOGS"/; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

start() { # $1 = data dir, rest = extra args; sets PID HTTP
  HTTP=$(free_port)
  # The writer's trace lines carry when each batch became durable: mqttbench times tickets
  # from there (--commit-log).
  RUST_LOG=warn,orderd::store::writer=trace "$BIN" run --data-dir "$1" --http-listen "127.0.0.1:$HTTP" "${@:2}" >"$1.out" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q "API:" "$1.out" 2>/dev/null && break; sleep 0.1; done
}

if want emb; then
echo "== embedded broker: ${SECS}s at 200 orders/s, 20 printers, 10 displays, 20 buzzers"
MQTT=$(free_port)
start "$WORK/emb" --mqtt-listen "127.0.0.1:$MQTT"
(cd "$WORK" && "$OLDPWD/$BENCH" --base "http://127.0.0.1:$HTTP" --mqtt-port "$MQTT" \
  --admin-password-file "$WORK/emb/initial-admin-password" --secs "$SECS" --pid "$PID" --prefix emb \
  --commit-log "$WORK/emb.out")
kill "$PID"; wait "$PID" || true
fi

if want net; then
echo "== embedded broker: ${SECS}s at 200 orders/s, 20 network printers (emulated), 10 displays, 20 buzzers"
MQTT=$(free_port)
start "$WORK/net" --mqtt-listen "127.0.0.1:$MQTT"
(cd "$WORK" && "$OLDPWD/$BENCH" --base "http://127.0.0.1:$HTTP" --mqtt-port "$MQTT" \
  --admin-password-file "$WORK/net/initial-admin-password" --secs "$SECS" --pid "$PID" --prefix net \
  --printers 0 --net-printers 20 --commit-log "$WORK/net.out")
kill "$PID"; wait "$PID" || true
fi

if want idle; then
echo "== idle cost of the embedded broker: an idle daemon with it, and one in external mode"
start "$WORK/idle1" --mqtt-listen "127.0.0.1:$(free_port)"; sleep 3
echo "embedded broker: $(grep VmRSS /proc/$PID/status)"; kill "$PID"; wait "$PID" || true
printf '[mqtt]\nmode = "external"\nexternal_port = 9\nhub_password_file = "/dev/null"\n' >"$WORK/nobroker.toml"
start "$WORK/idle2" --config "$WORK/nobroker.toml"; sleep 3
echo "no broker (external mode, unreachable): $(grep VmRSS /proc/$PID/status)"; kill "$PID"; wait "$PID" || true
fi

if want ext; then
echo "== external broker: Mosquitto (set_tcp_nodelay true), same load"
# Register the devices once through a daemon (the bench keeps their passwords), export the
# Mosquitto files, then run the daemon against Mosquitto.
MQTT=$(free_port)
start "$WORK/ext" --mqtt-listen "127.0.0.1:$MQTT"
(cd "$WORK" && "$OLDPWD/$BENCH" --base "http://127.0.0.1:$HTTP" --mqtt-port "$MQTT" \
  --admin-password-file "$WORK/ext/initial-admin-password" --secs 0 --prefix ext >/dev/null)
kill "$PID"; wait "$PID" || true
"$BIN" device export-acl --dir "$WORK/acl" --data-dir "$WORK/ext" >/dev/null
MPORT=$(free_port)
cat >"$WORK/mosquitto.conf" <<CONF
listener $MPORT 127.0.0.1
allow_anonymous false
password_file $WORK/acl/mosquitto.passwd
acl_file $WORK/acl/mosquitto.acl
persistence false
set_tcp_nodelay true
max_queued_messages 10000
$( [ "$(id -u)" = 0 ] && echo "user root" )
CONF
mosquitto -c "$WORK/mosquitto.conf" >/dev/null 2>&1 &
MPID=$!
sleep 1
cat >"$WORK/ext.toml" <<CONF
[mqtt]
mode = "external"
external_port = $MPORT
hub_password_file = "$WORK/acl/hub-password"
CONF
start "$WORK/ext" --config "$WORK/ext.toml"
(cd "$WORK" && "$OLDPWD/$BENCH" --base "http://127.0.0.1:$HTTP" --mqtt-port "$MPORT" \
  --admin-password-file "$WORK/ext/initial-admin-password" --secs "$SECS" --pid "$PID" --prefix ext \
  --commit-log "$WORK/ext.out")
echo "mosquitto: $(grep VmRSS /proc/$MPID/status)"
kill "$PID" "$MPID"; wait "$PID" "$MPID" 2>/dev/null || true
fi

if want idle500; then
echo "== 500 idle devices on the embedded broker"
MQTT=$(free_port)
start "$WORK/idle" --mqtt-listen "127.0.0.1:$MQTT"
(cd "$WORK" && "$OLDPWD/$BENCH" --base "http://127.0.0.1:$HTTP" --mqtt-port "$MQTT" \
  --admin-password-file "$WORK/idle/initial-admin-password" --idle 500 --pid "$PID" --prefix idle)
kill "$PID"; wait "$PID" || true
fi
