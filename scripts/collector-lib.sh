# Sourced by the benchmarks that need a chain collector (scripts/bench.sh,
# scripts/bench-upload.sh): a throwaway PostgreSQL cluster (fsync on, the settings of
# config/collector-postgresql.conf) and orderd-collector on loopback, in $WORK.
# After `start_collector`: PGPORT, CPORT, COLLECTOR (the command with its config), SITE_TOKEN
# (the upload token of site "demo"). `stop_collector` stops both; call it from the EXIT trap.

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

start_collector() {
  [ "$(id -u)" = 0 ] && chown postgres "$WORK"
  PGPORT=$(free_port)
  as_pg "$PGBIN/initdb" -D "$WORK/pg" -U orderd --auth=trust >/dev/null
  cat config/collector-postgresql.conf >>"$WORK/pg/postgresql.conf"
  as_pg "$PGBIN/postgres" -D "$WORK/pg" -p "$PGPORT" -k "$WORK" -c listen_addresses=127.0.0.1 \
    -c max_connections=300 -c shared_buffers=256MB >"$WORK/pg.log" 2>&1 &
  local ok=
  for _ in $(seq 100); do
    psql -h 127.0.0.1 -p "$PGPORT" -U orderd -d postgres -qAtc "CREATE DATABASE orderd" 2>/dev/null && { ok=1; break; }
    sleep 0.2
  done
  [ -n "$ok" ] || { cat "$WORK/pg.log" >&2; echo "PostgreSQL did not start" >&2; return 1; }
  mkdir -p "$WORK/c"
  cat >"$WORK/c/collector.toml" <<CONF
pool_size = 32
[database]
value = "host=127.0.0.1 port=$PGPORT user=orderd dbname=orderd"
CONF
  COLLECTOR="$PWD/target/release/orderd-collector --config $WORK/c/collector.toml"
  CPORT=$(free_port)
  RUST_LOG=warn $COLLECTOR run --listen "127.0.0.1:$CPORT" >"$WORK/c/out" 2>&1 &
  for _ in $(seq 100); do grep -q listening "$WORK/c/out" 2>/dev/null && break; sleep 0.1; done
  SITE_TOKEN=$($COLLECTOR site add demo | tail -n 1)
}

stop_collector() {
  [ -d "$WORK/pg" ] && as_pg "$PGBIN/pg_ctl" stop -m immediate -D "$WORK/pg" >/dev/null 2>&1 || true
}
