#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the store's PostgreSQL tests.
#
#   eval "$(scripts/pg-test-cluster.sh start)"   # start one; exports the test variables
#   cargo test -p tollgate-store                 # the PostgreSQL scenarios now run too
#   scripts/pg-test-cluster.sh env               # print the exports again
#   scripts/pg-test-cluster.sh stop              # stop it and delete its directory
#
# `start` prints only `export NAME=value` lines on stdout (logs go to stderr):
#   TOLLGATE_TEST_POSTGRES_URL            the app role: LOGIN, NOSUPERUSER, NOBYPASSRLS, owns nothing
#   TOLLGATE_TEST_POSTGRES_OWNER_URL      the owner role: runs migrations, CREATEDB (tests make a
#                                         database each, so they run in parallel)
#   TOLLGATE_TEST_POSTGRES_SUPERUSER_URL  the cluster's superuser (to prove connect() refuses it)
#   TOLLGATE_TEST_POSTGRES_DIR            the cluster's directory; `stop` and `env` read it
#
# The cluster lives in a temporary directory, listens on 127.0.0.1 on a free port with its
# unix socket in that directory, and runs with fsync off: it is for tests only. As root, the
# server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
APP_ROLE=tollgate_app
OWNER_ROLE=tollgate_owner
DATABASE=tollgate

log() { echo "pg-test-cluster: $*" >&2; }

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

ensure_binaries() {
    if [ -x "$PG_BIN/initdb" ]; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "no PostgreSQL 15 in $PG_BIN; install postgresql-15 (or set PG_BIN)"
        exit 1
    fi
    log "installing postgresql-15"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql-15 >&2
}

free_port() {
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 30000))
        if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    log "no free port found"
    exit 1
}

secret() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

start() {
    ensure_binaries
    local dir port superuser_password owner_password app_password
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-pg.XXXXXX")
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    port=$(free_port)
    superuser_password=$(secret)
    owner_password=$(secret)
    app_password=$(secret)
    printf '%s\n' "$superuser_password" >"$dir/superuser-password"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/superuser-password"

    as_server_user "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --pwfile="$dir/superuser-password" --encoding=UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    rm -f "$dir/superuser-password"
    as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=300" \
        start >&2 || {
        cat "$dir/server.log" >&2
        exit 1
    }
    as_server_user "$PG_BIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >&2 <<SQL
CREATE ROLE $OWNER_ROLE LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS PASSWORD '$owner_password';
CREATE ROLE $APP_ROLE LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '$app_password';
CREATE DATABASE $DATABASE OWNER $OWNER_ROLE;
SQL
    {
        echo "export TOLLGATE_TEST_POSTGRES_DIR=$dir"
        echo "export TOLLGATE_TEST_POSTGRES_URL=postgres://$APP_ROLE:$app_password@127.0.0.1:$port/$DATABASE"
        echo "export TOLLGATE_TEST_POSTGRES_OWNER_URL=postgres://$OWNER_ROLE:$owner_password@127.0.0.1:$port/$DATABASE"
        echo "export TOLLGATE_TEST_POSTGRES_SUPERUSER_URL=postgres://postgres:$superuser_password@127.0.0.1:$port/postgres"
    } >"$dir/env"
    chmod 600 "$dir/env"
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, directory $dir"
    cat "$dir/env"
}

cluster_dir() {
    local dir=${1:-${TOLLGATE_TEST_POSTGRES_DIR:-}}
    if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then
        log "no cluster: pass its directory or set TOLLGATE_TEST_POSTGRES_DIR (start prints it)"
        exit 1
    fi
    echo "$dir"
}

stop() {
    local dir
    dir=$(cluster_dir "${1:-}")
    as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
    rm -rf "$dir"
    log "stopped and removed $dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
env) cat "$(cluster_dir "${2:-}")/env" ;;
*)
    echo "usage: $0 start|stop [DIR]|env [DIR]" >&2
    exit 2
    ;;
esac
