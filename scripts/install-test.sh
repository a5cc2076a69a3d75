#!/usr/bin/env bash
# The installed box, tested as an installer would use it: the .deb goes into a Debian 12 root
# booted with systemd as PID 1 (systemd-nspawn -b, with a network of its own, so nothing on this
# machine's ports is touched), and everything goes through the real unit with all its hardening:
#   1. the previous package installed and used (an order placed), its conffile edited, then the
#      upgrade to this one: the edit is kept, the order is there, the data moved to the user orderd;
#   2. `orderd device add` refused while the service runs (saying how to stop it), then done
#      through a stop, without flags, leaving every file the service's; `orderd status` as root,
#      and refused for other users with the reason;
#   3. backup, restore and a restart;
#   4. a token file root:root 0600 refused by check-config (as the service's user would be), then
#      root:orderd 0640 accepted and read by the service;
#   5. port 80;
#   6. purge: the store and the conffile go, the installer's files in /etc/orderd stay (said so);
#   7. a fresh install: the post-install message (admin page, password file, logs), no demo data,
#      the first start's journal, and the first guest order from a table's QR token.
# By hand, as root (not in CI: it downloads a minimal Debian once, about 60 MB):
#   scripts/package.sh && scripts/install-test.sh [PREVIOUS.deb]
# Without PREVIOUS.deb, the previous release (PREV_REF, the commit packaged as 0.1.0-1) is built
# once with its own scripts/package.sh into target/it/ (about 5 minutes) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

PREV_REF=${PREV_REF:-474c304}
it=$PWD/target/it
mkdir -p "$it"
deb=$(ls -t target/debian/orderd_*_amd64.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "no target/debian/orderd_*_amd64.deb: run scripts/package.sh first" >&2; exit 1; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

prev=${1:-}
if [ -z "$prev" ]; then
  prev=$(ls "$it"/prev/orderd_*_amd64.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$prev" ]; then
    echo "== building the previous package ($PREV_REF)"
    rm -rf "$it/prev-src" && git worktree prune
    git worktree add -f "$it/prev-src" "$PREV_REF" >/dev/null
    (cd "$it/prev-src" && scripts/package.sh >"$it/prev-build.log" 2>&1) \
      || { echo "building $PREV_REF failed: $it/prev-build.log" >&2; exit 1; }
    mkdir -p "$it/prev"
    cp "$it"/prev-src/target/debian/orderd_*_amd64.deb "$it/prev/"
    git worktree remove --force "$it/prev-src"
    prev=$(ls "$it"/prev/orderd_*_amd64.deb | head -n 1)
  fi
fi
echo "previous: $prev"
echo "this:     $deb"

tarball=$it/bookworm-systemd.tgz
root=$it/root
if [ ! -f "$tarball" ]; then
  rm -rf "$it/mk"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,ca-certificates,adduser \
    --make-tarball="$tarball" bookworm "$it/mk" http://deb.debian.org/debian >"$it/debootstrap.log"
  rm -rf "$it/mk"
fi
rm -rf "$root" && mkdir -p "$root"
debootstrap --variant=minbase --unpack-tarball="$tarball" bookworm "$root" >"$it/unpack.log"
cp "$prev" "$root/root/prev.deb"
cp "$deb" "$root/root/new.deb"

nspawn=
cleanup() {
  if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
    in_c systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
    kill "$nspawn" 2>/dev/null || true
  fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; in_c journalctl -u orderd --no-pager -n 40 >&2 || true; exit 1; }

# Boot: the container's PID 1 is the direct child of systemd-nspawn.
systemd-nspawn -q -b -D "$root" -M "orderd-it-$$" --register=no --keep-unit --private-network \
  >"$it/boot.log" 2>&1 &
nspawn=$!
leader=
for _ in $(seq 1 100); do
  leader=$(pgrep -P "$nspawn" | head -n 1 || true)
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { cat "$it/boot.log" >&2; echo "FAIL: the container did not start" >&2; exit 1; }
in_c() {
  nsenter -t "$leader" -m -u -i -n -p -C -r -w -- \
    /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive "$@"
}
# Polls a command inside the box until it succeeds, for at most $1 seconds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  for _ in $(seq 1 $((secs * 10))); do
    in_c "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "$what (waited ${secs} s)"
}
wait_for 60 "booting systemd" sh -c 'systemctl is-system-running | grep -Eq "running|degraded"'

port=8080
api() { # api METHOD PATH [TOKEN] [BODY]
  local args=(-sS -X "$1" "http://127.0.0.1:$port$2" -H 'content-type: application/json')
  [ -n "${3:-}" ] && args+=(-H "authorization: Bearer $3")
  [ -n "${4:-}" ] && args+=(-d "$4")
  in_c curl "${args[@]}"
}
login() {
  local pw
  pw=$(in_c cat /var/lib/orderd/initial-admin-password)
  api POST /api/v1/auth/login "" "{\"username\":\"admin\",\"password\":\"$pw\"}" \
    | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}
ready() { wait_for 30 "orderd /readyz on port $port" curl -fsS "http://127.0.0.1:$port/readyz"; }
owned_by_service() {
  local strays
  strays=$(in_c find /var/lib/orderd/ ! -user orderd)
  [ -z "$strays" ] || fail "files in /var/lib/orderd not owned by orderd: $strays"
}

echo "== 1. the previous package, used, then upgraded with its edited conffile kept"
in_c dpkg -i /root/prev.deb >/dev/null
ready
token=$(login)
[ -n "$token" ] || fail "admin login on the previous package"
order=$(api POST /api/v1/orders "$token" \
  '{"type":"takeaway","items":[{"item_id":"espresso","quantity":2}]}' \
  | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$order" ] || fail "an order on the previous package"
in_c sed -i 's/^name = "Demo Restaurant"$/name = "Kept By The Installer"/' /etc/orderd/orderd.toml
out=$(in_c dpkg -i --force-confold /root/new.deb 2>&1) || fail "upgrade: $out"
grep -q "upgraded from 0.1.0-1" <<<"$out" || fail "no upgrade message: $out"
in_c grep -qx 'name = "Kept By The Installer"' /etc/orderd/orderd.toml || fail "the edited conffile was replaced"
in_c systemctl is-active -q orderd || fail "orderd is not active after the upgrade"
ready
[ "$(in_c stat -c %U /var/lib/orderd)" = orderd ] || fail "/var/lib/orderd is not the user orderd's"
[ ! -L "$root/var/lib/orderd" ] || fail "/var/lib/orderd is still the dynamic user's symlink"
owned_by_service
token=$(login)
api GET "/api/v1/orders/$order" "$token" | grep -q "\"id\":\"$order\"" || fail "the order placed before the upgrade is gone"
echo "ok: upgraded, conffile kept, order $order kept, data owned by orderd"

echo "== 2. admin commands find the service's store"
out=$(in_c orderd device add p1 --kind printer --station grill 2>&1) && fail "device add succeeded while the service holds the store"
grep -q "systemctl stop orderd" <<<"$out" || fail "device add did not say how to stop the service: $out"
in_c systemctl stop orderd
out=$(in_c orderd device add p1 --kind printer --station grill 2>&1) || fail "device add: $out"
grep -q "password" <<<"$out" || fail "device add printed no password: $out"
owned_by_service
in_c systemctl start orderd
ready
token=$(login)
api GET /api/v1/devices "$token" | grep -q '"id":"p1"' || fail "the service does not see device p1"
in_c orderd status | grep -q '"ok": true' || fail "orderd status as root"
out=$(in_c setpriv --reuid=nobody --regid=nogroup --clear-groups orderd status 2>&1) && fail "status worked for nobody"
grep -q "run this as root" <<<"$out" || fail "status for another user did not say why: $out"
echo "ok: device add through a stop, status as root only"

echo "== 3. backup, restore and a restart"
in_c orderd backup /root/before.redb | grep -q "backup written" || fail "backup"
later=$(api POST /api/v1/orders "$token" '{"type":"takeaway","items":[{"item_id":"espresso","quantity":1}]}' \
  | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$later" ] || fail "an order after the backup"
out=$(in_c orderd restore /root/before.redb 2>&1) && fail "restore succeeded while the service runs"
in_c systemctl stop orderd
in_c orderd restore /root/before.redb | grep -q restored || fail "restore"
owned_by_service
in_c systemctl start orderd
ready
token=$(login)
api GET "/api/v1/orders/$order" "$token" | grep -q "\"id\":\"$order\"" || fail "the backed-up order is missing after restore"
api GET "/api/v1/orders/$later" "$token" | grep -q "\"id\":\"$later\"" && fail "the order after the backup survived the restore"
echo "ok: restored, restarted, files the service's"

echo "== 4. a token file only root and the service may read"
in_c sh -c 'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n" > /etc/orderd/metrics-token && chmod 0600 /etc/orderd/metrics-token'
in_c sed -i '/^\[http.metrics_token\]/,/^file = /s|^file = ""$|file = "/etc/orderd/metrics-token"|' /etc/orderd/orderd.toml
in_c grep -q '^file = "/etc/orderd/metrics-token"$' /etc/orderd/orderd.toml || fail "could not set the token file"
out=$(in_c orderd check-config 2>&1) && fail "check-config as root accepted a token file the service cannot read"
grep -q "user orderd cannot read" <<<"$out" || fail "check-config did not name the service's user: $out"
in_c chgrp orderd /etc/orderd/metrics-token
in_c chmod 0640 /etc/orderd/metrics-token
in_c orderd check-config >/dev/null || fail "check-config refused root:orderd 0640"
in_c systemctl restart orderd
in_c systemctl is-active -q orderd || fail "the service could not read root:orderd 0640"
ready
metrics_token=$(in_c cat /etc/orderd/metrics-token)
in_c curl -fsS "http://127.0.0.1:$port/metrics" -H "authorization: Bearer $metrics_token" | grep -q orderd_ \
  || fail "/metrics with the token"
echo "ok: 0600 refused with the reason, root:orderd 0640 read by the service"

echo "== 5. port 80"
in_c sed -i 's|^listen = "0.0.0.0:8080"$|listen = "0.0.0.0:80"|' /etc/orderd/orderd.toml
in_c systemctl restart orderd
port=80
ready
wait_for 10 "the banner's port-80 URL" sh -c 'journalctl -u orderd --no-pager | grep -q "Kitchen:  http://127.0.0.1/kitchen"'
echo "ok: bound port 80 as the user orderd; $(in_c systemd-analyze security orderd --no-pager 2>/dev/null | tail -n 1)"

echo "== 6. purge keeps the installer's files"
in_c sh -c 'echo "# the collector" > /etc/orderd/collector.toml'
out=$(in_c dpkg --purge orderd 2>&1) || fail "purge: $out"
grep -q "kept /etc/orderd" <<<"$out" || fail "purge did not say what it kept: $out"
for f in /etc/orderd/collector.toml /etc/orderd/metrics-token; do
  in_c test -e "$f" || fail "purge removed $f"
done
for f in /etc/orderd/orderd.toml /var/lib/orderd /var/lib/private/orderd; do
  in_c test ! -e "$f" || fail "purge left $f"
done
echo "ok: purged; collector.toml and metrics-token kept"

echo "== 7. a fresh install, to the first guest order"
port=8080
out=$(in_c dpkg -i /root/new.deb 2>&1) || fail "install: $out"
for want in "/admin" "/var/lib/orderd/initial-admin-password" "journalctl -u orderd"; do
  grep -qF "$want" <<<"$out" || fail "the post-install message lacks $want: $out"
done
sed 's/^/    | /' <<<"$out"
ready
wait_for 10 "the first start's banner in the journal" sh -c 'journalctl -u orderd --no-pager | grep -q "Logs:     journalctl"'
journal=$(in_c journalctl -u orderd --no-pager)
grep -q "Config:   /etc/orderd/orderd.toml" <<<"$journal" || fail "the first start does not name its config"
grep -q "password in /var/lib/orderd/initial-admin-password" <<<"$journal" || fail "the first start does not say where the password is"
grep -q "journalctl -u orderd" <<<"$journal" || fail "the first start does not say how to read the logs"
in_c grep -qx 'demo_data = false' /etc/orderd/orderd.toml || fail "the shipped config seeds demo data"
token=$(login)
[ -n "$token" ] || fail "admin login with the password file on a fresh install"
api GET /api/v1/tables "$token" | grep -q '"qr_token"' && fail "a fresh box has tables"
api GET '/api/v1/menu?lang=en' | grep -q espresso && fail "a fresh box has the demo menu"
code=$(in_c curl -sS -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$port/api/v1/menu" \
  -H "authorization: Bearer $token" -H 'content-type: application/json' \
  --data @/usr/share/doc/orderd/examples/menu.json)
[ "$code" = 200 ] || [ "$code" = 204 ] || fail "loading the example menu: HTTP $code"
added=$(api POST /api/v1/tables "$token" '{"label":"T1","zone":"inside"}')
table=$(sed -n 's/.*"qr_token":"\([^"]*\)".*/\1/p' <<<"$added")
[ -n "$table" ] || fail "adding a table: $added"
guest=$(api POST /api/v1/orders "" \
  "{\"type\":\"dine_in\",\"table_token\":\"$table\",\"items\":[{\"item_id\":\"espresso\",\"quantity\":1}]}")
grep -q '"number"' <<<"$guest" || fail "the first guest order: $guest"
in_c dpkg --purge orderd >/dev/null
echo "ok: fresh install, message, first guest order from table T1"

echo "install test: OK ($(basename "$deb"), upgraded from $(basename "$prev"), Debian 12 under systemd $(in_c systemctl --version | head -n 1 | cut -d' ' -f2))"
