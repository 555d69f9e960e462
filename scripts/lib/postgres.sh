# Throwaway PostgreSQL cluster for the tests (sourced by scripts/test.sh).
#   pg_start          initdb in a temporary folder, start the server on a free port with its Unix
#                     socket in that folder, create the database `detbench`, and export
#                     DETBENCH_TEST_POSTGRES (the URL the store tests use)
#   pg_stop           stop that server (by its data folder) and remove the folder; safe to call
#                     twice, and called from the caller's EXIT trap so a failing test stops it too
# The server binaries come from Debian's `postgresql` package (scripts/setup.sh --services).
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user the
# package creates. Durability is switched off (fsync, synchronous_commit): the cluster lives for
# one test run and is deleted after it.

pg_bin_dir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -x "$dir/initdb" ] || { echo "[test] PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); run scripts/setup.sh --services" >&2; return 1; }
  echo "$dir"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_as_owner() {  # runs a server binary as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  local bin port
  bin="$(pg_bin_dir)" || return 1
  PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/detbench-pg.XXXXXX")"
  port="$(free_port)"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_TMP"
  echo "[test] starting a throwaway PostgreSQL ($("$bin/postgres" --version | awk '{print $3}')) in $PG_TMP, port $port" >&2
  pg_as_owner "$bin/initdb" -D "$PG_TMP/data" -U detbench --auth=trust --encoding=UTF8 --locale=C >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  pg_as_owner "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-k $PG_TMP -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=100" \
    start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  PG_DATA="$PG_TMP/data"
  "$bin/createdb" -h "$PG_TMP" -p "$port" -U detbench detbench
  export DETBENCH_TEST_POSTGRES="postgresql://detbench@${PG_TMP//\//%2F}:$port/detbench"
  export DETBENCH_TEST_REQUIRE_POSTGRES=1
  echo "[test] PostgreSQL ready: $DETBENCH_TEST_POSTGRES" >&2
}

pg_stop() {
  [ -n "${PG_TMP:-}" ] || return 0
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    local bin
    bin="$(pg_bin_dir)" && pg_as_owner "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 \
      || echo "[test] could not stop PostgreSQL in $PG_DATA (see $PG_TMP/server.log)" >&2
  fi
  rm -rf "$PG_TMP"
  echo "[test] PostgreSQL stopped and $PG_TMP removed" >&2
  PG_TMP=""
  PG_DATA=""
}
