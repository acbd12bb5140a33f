#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the storage adapter tests, from Debian's packages.
#
#   export ONEGRID_TEST_POSTGRES="$(tests/ci/postgres.sh start)"   # prints the URL, nothing else
#   tests/ci/postgres.sh stop
#
# `start` stops a server left by an earlier `start` first, then makes a fresh one: a new data folder,
# trust authentication, listening on 127.0.0.1 only. Installs the `postgresql` package when initdb
# is missing. As root the server runs as the `postgres` user (initdb refuses root).
# Settings: ONEGRID_PG_PORT (default 55432), ONEGRID_PG_DIR (default $TMPDIR/onegrid-pg-$PORT).
set -euo pipefail

port="${ONEGRID_PG_PORT:-55432}"
dir="${ONEGRID_PG_DIR:-${TMPDIR:-/tmp}/onegrid-pg-$port}"
data="$dir/data"

say() { echo "postgres.sh: $*" >&2; }

# Debian keeps the server's programs out of PATH, under /usr/lib/postgresql/<version>/bin.
find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$found" ] && [ -x "$found/initdb" ]; then
        echo "$found"
    fi
}

# Runs a command as the server's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if [ "$(id -u)" -ne 0 ]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c '"$0" "$@"' -- "$@"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

stop() {
    local bin="$1"
    if [ -f "$data/postmaster.pid" ] && [ -n "$bin" ]; then
        say "stopping the server in $data"
        (cd / && as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >&2) || say "pg_ctl stop failed; removing its folder anyway"
    fi
    rm -rf "$dir"
}

start() {
    local bin
    bin="$(find_bin)"
    if [ -z "$bin" ]; then
        say "initdb not found: installing the postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2
        apt-get install -y --no-install-recommends postgresql >&2
        bin="$(find_bin)"
        [ -n "$bin" ] || { say "initdb is still missing after installing postgresql"; exit 1; }
    fi
    stop "$bin"
    if port_in_use; then
        say "port $port on 127.0.0.1 is taken by another program; set ONEGRID_PG_PORT to a free port"
        exit 1
    fi

    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { say "there is no postgres user (the postgresql package makes it)"; exit 1; }
        chown postgres: "$dir"
    fi
    # Run from / so the owner is never left in a folder it cannot read.
    cd /
    # Locale C exists everywhere; the adapter stores bytes, so collation does not matter to it.
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1 || {
        say "initdb failed:"
        cat "$dir/initdb.log" >&2
        exit 1
    }
    # fsync off: a test server's data need not survive a crash of the machine.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off" start >&2 || {
        say "the server did not start; its log:"
        cat "$dir/server.log" >&2 || true
        exit 1
    }
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

case "${1:-}" in
    start) start ;;
    stop) stop "$(find_bin)" ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
