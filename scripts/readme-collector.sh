#!/usr/bin/env bash
# Follows the README's "Chain collector (PostgreSQL)" section step by step, as root, without
# systemd: a throwaway PostgreSQL cluster stands in for the system's (the same peer
# authentication over its local socket), a throwaway Unix user `orderd-collector` for the unit's
# dynamic user, and the unit's ExecStartPre/ExecStart lines are run by hand. Then a box uploads
# to it as the section's last paragraph says, and the head office's report counts its order.
# Loopback only; leaves nothing behind. Part of scripts/test.sh.
#   scripts/readme-collector.sh   (uses target/debug; BIN=target/release for a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/${BIN:-target/debug}"
[ "$(id -u)" = 0 ] || { echo "readme-collector: run as root (it creates a Unix user)" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
WORK=$(mktemp -d)
chmod 0755 "$WORK"
CREATED_USER=
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -f "$WORK/pg/postmaster.pid" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  [ -n "$CREATED_USER" ] && userdel orderd-collector 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
step() { echo "readme-collector: $*"; }
until_ok() { # until_ok SECONDS COMMAND...: retries the command every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "readme-collector: timed out: $*" >&2; return 1; }
    sleep 0.2
  done
}

# The README's own lines, so that this script and the section cannot drift apart unseen.
for line in "sudo -u postgres createuser orderd-collector" \
            "sudo -u postgres createdb -O orderd-collector orderd" \
            "config/collector-postgresql.conf" \
            "sudo install -D -m 0644 config/collector.toml /etc/orderd/collector.toml" \
            "sudo systemctl enable --now orderd-collector" \
            "sudo -u postgres orderd-collector --config /etc/orderd/collector.toml site add demo" \
            'set `[upload] enabled = true`'; do
  grep -qF -- "$line" README.md || { echo "readme-collector: the README no longer says: $line" >&2; exit 1; }
done

step "1. PostgreSQL, with peer authentication on its local socket"
SOCK="$WORK/sock"
mkdir -p "$SOCK" && chown postgres "$WORK" "$SOCK"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth-local=peer --auth-host=reject >/dev/null
# The README installs config/collector-postgresql.conf into the cluster's conf.d.
mkdir -p "$WORK/pg/conf.d"
echo "include_dir = 'conf.d'" >>"$WORK/pg/postgresql.conf"
install -m 0644 config/collector-postgresql.conf "$WORK/pg/conf.d/orderd-collector.conf"
chown -R postgres "$WORK/pg/conf.d"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-k $SOCK -c listen_addresses=''" start >/dev/null

step "2. the role and the database the service reaches as its own user"
export PGHOST="$SOCK"
runuser -u postgres -- createuser orderd-collector
runuser -u postgres -- createdb -O orderd-collector orderd
if ! id orderd-collector >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin orderd-collector
  CREATED_USER=1
fi

step "3. the configuration (the README's /etc/orderd/collector.toml, with [reports_token] set)"
PORT=$(free_port)
REPORTS=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
mkdir -p "$WORK/etc"
sed -e "s|^listen = .*|listen = \"127.0.0.1:$PORT\"|" \
    -e "s|host=/var/run/postgresql|host=$SOCK|" config/collector.toml >"$WORK/etc/collector.toml"
# [reports_token] value = "…": the first `value = ""` after that table.
python3 - "$WORK/etc/collector.toml" "$REPORTS" <<'PY'
import sys
path, token = sys.argv[1], sys.argv[2]
text = open(path).read()
head, _, tail = text.partition("[reports_token]")
assert tail, "config/collector.toml has no [reports_token]"
open(path, "w").write(head + "[reports_token]" + tail.replace('value = ""', f'value = "{token}"', 1))
PY
chmod 0644 "$WORK/etc/collector.toml"

step "4. the service's start: ExecStartPre (migrate) and ExecStart (run) as its user"
CONF="$WORK/etc/collector.toml"
grep -q "ExecStartPre=/usr/bin/orderd-collector --config /etc/orderd/collector.toml migrate" systemd/orderd-collector.service
grep -q "ExecStart=/usr/bin/orderd-collector --config /etc/orderd/collector.toml run" systemd/orderd-collector.service
runuser -u orderd-collector -- "$BIN/orderd-collector" --config "$CONF" migrate
runuser -u orderd-collector -- "$BIN/orderd-collector" --config "$CONF" run >"$WORK/collector.log" 2>&1 &
pids+=($!)
until_ok 20 curl -sf "http://127.0.0.1:$PORT/healthz"

step "5. an admin command as PostgreSQL's superuser: site add demo prints the token once"
runuser -u postgres -- "$BIN/orderd-collector" --config "$CONF" site add demo >"$WORK/site.txt"
SITE_TOKEN=$(tail -n 1 "$WORK/site.txt")
[ "${#SITE_TOKEN}" -ge 20 ] || { cat "$WORK/site.txt" >&2; exit 1; }

step "6. a box with [upload] enabled, its url and its token file, uploads an order"
mkdir -p "$WORK/box"
printf '%s\n' "$SITE_TOKEN" >"$WORK/box/upload-token"
chmod 0600 "$WORK/box/upload-token"
cat >"$WORK/box/orderd.toml" <<CONF
[store]
data_dir = "$WORK/box/data"
[http]
listen = "127.0.0.1:0"
[mqtt]
listen = "127.0.0.1:0"
[upload]
enabled = true
url = "http://127.0.0.1:$PORT/v1/batches"
[upload.token]
file = "$WORK/box/upload-token"
CONF
"$BIN/orderd" run --config "$WORK/box/orderd.toml" >"$WORK/box.log" 2>&1 &
pids+=($!)
until_ok 30 grep -q "API:" "$WORK/box.log"
API=$(sed -n 's/.*API:[[:space:]]*\(http:\/\/[^/ ]*\).*/\1/p' "$WORK/box.log" | head -n 1)
PW=$(cat "$WORK/box/data/initial-admin-password")
TOKEN=$(curl -sf "$API/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PW\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
curl -sf "$API/api/v1/orders" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"type":"takeaway","items":[{"item_id":"espresso","quantity":2}]}' >/dev/null

step "7. the head office's report counts it"
DAY=$(date -u +%Y-%m-%d)
FROM=$(date -u -d "$DAY - 1 day" +%Y-%m-%d)
TO=$(date -u -d "$DAY + 1 day" +%Y-%m-%d)
counted() {
  curl -sf "http://127.0.0.1:$PORT/v1/summary?from=$FROM&to=$TO" -H "authorization: Bearer $REPORTS" \
    | python3 -c '
import json, sys
s = json.load(sys.stdin)
demo = [d for d in s["per_site_day"] if d["site_id"] == "demo" and d["orders"] >= 1]
espresso = [i for i in s["top_items"] if i["item_id"] == "espresso" and i["quantity"] == 2]
sys.exit(0 if s["orders"] == 1 and demo and espresso else 1)'
}
if ! until_ok 30 counted; then
  curl -s "http://127.0.0.1:$PORT/v1/summary?from=$FROM&to=$TO" -H "authorization: Bearer $REPORTS" >&2
  tail -n 20 "$WORK/collector.log" "$WORK/box.log" >&2
  exit 1
fi
# A site token may not read the head office's report.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/summary?from=$FROM&to=$TO" -H "authorization: Bearer $SITE_TOKEN")" = 401 ]
step "OK: the README's collector section works as written"
