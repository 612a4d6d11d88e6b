#!/usr/bin/env bash
# Crash test for the service-hook receiver: every delivery tollgate acknowledged must survive
# SIGKILL.
#
#   scripts/crash-test.sh                 # 5 cycles
#   CYCLES=10 CONNECTIONS=64 scripts/crash-test.sh
#
# Each cycle starts `tollgate serve` on the same database, posts events over CONNECTIONS
# keep-alive connections (examples/crash_load.rs records every id answered 2xx), kills the
# server with SIGKILL after a random 1–3 s, and waits for the load generator to notice. Then
# the database the last kill left behind is opened directly (no server, no credential) and
# every acknowledged id is looked up in the events table. Exits non-zero if any is missing.
#
# Env: CYCLES (5), CONNECTIONS (32), TOLLGATE_BIN and CRASH_LOAD_BIN (skip the build and use
# these binaries), KEEP=1 (keep the work directory for inspection).
set -euo pipefail

cd "$(dirname "$0")/.."
cycles=${CYCLES:-5}
connections=${CONNECTIONS:-32}

if [[ -z ${TOLLGATE_BIN:-} || -z ${CRASH_LOAD_BIN:-} ]]; then
    echo "building target/release/tollgate and target/release/examples/crash_load" >&2
    cargo build --release --locked --quiet --bin tollgate --example crash_load
fi
tollgate=${TOLLGATE_BIN:-target/release/tollgate}
crash_load=${CRASH_LOAD_BIN:-target/release/examples/crash_load}
for binary in "$tollgate" "$crash_load"; do
    [[ -x $binary ]] || { echo "no executable at $binary" >&2; exit 2; }
done

# On the real disk (target/), not a tmpfs /tmp: fsync has to mean something here.
mkdir -p target/tmp
work=$(mktemp -d "$PWD/target/tmp/crash-test.XXXXXX")
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then kill -9 "$server_pid" 2>/dev/null || true; fi
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

printf 'crash-test-secret-%s' "$RANDOM$RANDOM" >"$work/webhook-secret"
cat >"$work/tollgate.toml" <<TOML
[database]
url = "$work/tollgate.db"

[webhook]
secret_file = "$work/webhook-secret"
TOML

# tollgate refuses TOLLGATE_* variables it does not know, and those it knows would override
# the configuration above.
unset_tollgate=()
while read -r name; do unset_tollgate+=(-u "$name"); done < <(compgen -e | grep '^TOLLGATE_' || true)

acknowledged_files=()
for ((cycle = 1; cycle <= cycles; cycle++)); do
    out="$work/server-$cycle.out"
    env "${unset_tollgate[@]}" TOLLGATE_LOG=warn \
        "$tollgate" --config "$work/tollgate.toml" serve --listen 127.0.0.1:0 \
        >"$out" 2>"$work/server-$cycle.err" &
    server_pid=$!

    base=
    for _ in $(seq 300); do
        base=$(sed -n 's/^listening on //p' "$out")
        [[ -n $base ]] && break
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "cycle $cycle: tollgate serve exited before listening:" >&2
            cat "$work/server-$cycle.err" >&2
            exit 2
        fi
        sleep 0.1
    done
    [[ -n $base ]] || { echo "cycle $cycle: tollgate serve did not listen within 30 s" >&2; exit 2; }

    acknowledged="$work/acknowledged-$cycle.txt"
    acknowledged_files+=("$acknowledged")
    "$crash_load" load --url "$base/hooks/ado/default" --secret-file "$work/webhook-secret" \
        --out "$acknowledged" --connections "$connections" &
    load_pid=$!

    delay_ms=$((1000 + RANDOM % 2001))
    sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
    kill -9 "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    if ! wait "$load_pid"; then
        echo "cycle $cycle: the load generator failed" >&2
        exit 2
    fi
    echo "cycle $cycle: killed after ${delay_ms} ms" >&2
done

"$crash_load" verify --db "$work/tollgate.db" "${acknowledged_files[@]}"
