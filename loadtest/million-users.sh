#!/usr/bin/env bash
# How much memory and start-up time USERS users with an HOTP token each cost a server
# (default 1,000,000): the users and seeds are imported once, then each build starts on a
# copy of that store, and the script reports how long the directory took to load (the
# server's own `directory loaded … elapsed_ms`), the resident set once it listens, and the
# peak resident set of the start-up (VmHWM).
#
# Knobs (environment): USERS (1000000), TOLLGATE_BIN, LOADTEST_BIN, and BASELINE_BIN: a
# second build started on a copy of the same store after the first. KEEP=1 keeps the
# temporary directory.
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}
BASELINE_BIN=${BASELINE_BIN:-}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}

SCRIPT=million-users
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

need_server_and_harness

say "writing $USERS HOTP seeds in $tmp"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/lt" >/dev/null
port=$(free_port)
cat >"$tmp/tollgate.toml" <<EOF
data_dir = "$tmp/data"

[radius]
listen = ["127.0.0.1:$port"]
EOF
"$TOLLGATE_BIN" --config "$tmp/tollgate.toml" init >/dev/null
started=$(date +%s.%N)
"$TOLLGATE_BIN" --config "$tmp/tollgate.toml" token import "$tmp/lt/seeds.csv" --create-users >/dev/null
ended=$(date +%s.%N)
printf '%s users and tokens imported in %s s\n' "$USERS" \
    "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')"

measure() {
    local name=$1 bin=$2 dir="$tmp/$1"
    mkdir -p "$dir"
    cp -a "$tmp/data" "$dir/data"
    sed -e "s|$tmp/data|$dir/data|" "$tmp/tollgate.toml" >"$dir/tollgate.toml"
    "$bin" --config "$dir/tollgate.toml" serve >"$dir/tollgate.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    # Loading a million users takes seconds.
    wait_listening "$name" "$pid" "$dir/tollgate.log" 120
    # Settled: what start-up left behind is freed or kept by now.
    sleep 2
    local load_ms rss hwm
    load_ms=$(sed -n 's/.*directory loaded.*elapsed_ms=\([0-9]*\).*/\1/p' "$dir/tollgate.log" | head -n1)
    rss=$(rss_mb "$pid")
    hwm=$(rss_mb "$pid" VmHWM)
    printf '%-9s directory loaded in %s ms; RSS %s MB listening, peak %s MB (%s)\n' \
        "$name" "$load_ms" "$rss" "$hwm" "$bin"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir/data"
}

measure tollgate "$TOLLGATE_BIN"
[ -z "$BASELINE_BIN" ] || measure baseline "$BASELINE_BIN"
