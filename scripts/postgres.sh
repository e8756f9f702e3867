#!/usr/bin/env bash
# A throwaway PostgreSQL for Runway's tests and benchmarks, from the Debian
# packages on the machine: a cluster in DIR (default target/postgres),
# listening on 127.0.0.1 only, trust auth, no superuser password.
#
#   scripts/postgres.sh start [DIR] [PORT]   # prints the URL to pass as --store
#   scripts/postgres.sh stop [DIR]
#   scripts/postgres.sh crash [DIR]          # stops it as a crash would (-m immediate)
#
# As root the cluster runs as the `postgres` user (initdb refuses root).
set -euo pipefail
cmd=${1:-start}
dir=$(realpath -m "${2:-target/postgres}")
port=${3:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 2; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres: "$dir"
      as_owner "$bin/initdb" -D "$dir" -A trust -U postgres --no-sync >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o \
        "-h 127.0.0.1 -p $port -k $dir -c max_connections=400 -c fsync=on" start >/dev/null
    fi
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop|crash)
    mode=fast; [ "$cmd" = crash ] && mode=immediate
    [ -f "$dir/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$dir" -m "$mode" stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop|crash [DIR] [PORT]" >&2; exit 2 ;;
esac
