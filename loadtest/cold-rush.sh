#!/usr/bin/env bash
# A morning rush: COLD users (default 10,000) log in for the first time of the day (each
# one an Argon2id check) as fast as the server's cores allow, while WARM users (default
# 1,000, their passwords cached) keep logging in beside them at a steady open-loop RATE.
#
# It answers two questions of the cold path: how many first logins a second the server
# gets through (per core), and whether logins that need no Argon2 check stay fast while the
# checks run (their p99). The server is not pinned: the password checks may use every core,
# the UDP workers keep theirs by priority (`[scheduling]`). The harness runs beside it on
# the same cores, so its own CPU is part of the picture; the report says how much.
#
# Knobs (environment): COLD (10000), WARM (1000), RATE (2000 warm logins/s), COLD_CONCURRENCY
# (32 first logins in flight), TOLLGATE_BIN, LOADTEST_BIN, and BASELINE_BIN: another build
# given a copy of the same store and the same rush after the first. Prints one report per
# build; KEEP=1 keeps the temporary directory with the harness's JSON reports and the logs.
set -euo pipefail

cd "$(dirname "$0")/.."
COLD=${COLD:-10000}
WARM=${WARM:-1000}
RATE=${RATE:-2000}
COLD_CONCURRENCY=${COLD_CONCURRENCY:-32}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}
BASELINE_BIN=${BASELINE_BIN:-}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}

SCRIPT=cold-rush
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

need_commands jq:jq
need_server_and_harness
CORES=$(nproc)

say "setting up $WARM warm and $COLD cold users in $tmp"
"$LOADTEST_BIN" setup --users "$WARM" --dir "$tmp/warm" --prefix warm --passwords >/dev/null
"$LOADTEST_BIN" setup --users "$COLD" --dir "$tmp/cold" --prefix cold --passwords >/dev/null
# One client, one secret: the cold set uses the warm set's.
cp "$tmp/warm/secret" "$tmp/cold/secret"

port=$(free_port)
cat >"$tmp/tollgate.toml" <<EOF
data_dir = "$tmp/data"

[radius]
listen = ["127.0.0.1:$port"]

[lockout]
threshold = 0
EOF
tollgate() { "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" "$@"; }
tollgate init >/dev/null
say "importing $((WARM + COLD)) users (Argon2id hashing on every core takes a while)"
timeout 1800 "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" user import "$tmp/warm/users.csv" >/dev/null
timeout 1800 "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" user import "$tmp/cold/users.csv" >/dev/null
tollgate token import "$tmp/warm/seeds.csv" >/dev/null
tollgate token import "$tmp/cold/seeds.csv" >/dev/null
tollgate client add loadtest --address 127.0.0.0/8 --secret-stdin --mode append <"$tmp/warm/secret" >/dev/null

# One rush per build, each on a fresh copy of the store and of the harness's directories.
rush() {
    local name=$1 bin=$2 dir="$tmp/$1"
    mkdir -p "$dir"
    cp -a "$tmp/data" "$dir/data"
    cp -a "$tmp/warm" "$dir/warm"
    cp -a "$tmp/cold" "$dir/cold"
    sed -e "s|$tmp/data|$dir/data|" "$tmp/tollgate.toml" >"$dir/tollgate.toml"
    "$bin" --config "$dir/tollgate.toml" serve >"$dir/tollgate.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_listening "$name" "$pid" "$dir/tollgate.log"

    say "$name: warming the $WARM warm users (one Argon2 check each)"
    harness "$dir/warm" --warmup --warmup-concurrency 4 --concurrency 1 --duration 1 \
        --max-requests 1 --json "$dir/warmup.json" >/dev/null
    [ "$(jq '.warmup.counts.ok' "$dir/warmup.json")" = "$WARM" ] ||
        die "$name: the warm users did not all log in"

    say "$name: warm logins alone for 10 s at $RATE/s (reference)"
    harness "$dir/warm" --rate "$RATE" --duration 10 --json "$dir/alone.json" >/dev/null

    say "$name: the rush: $COLD first logins, $COLD_CONCURRENCY in flight, beside warm logins at $RATE/s"
    local before after started ended warm_pid
    before=$(cpu_ticks "$pid")
    # Started directly (not through the function) so that $! is the harness itself, which
    # stops and reports on SIGINT once the rush is over.
    "$LOADTEST_BIN" run --server "127.0.0.1:$port" --secret-stdin --dir "$dir/warm" --quiet \
        --scenario append --rate "$RATE" --duration 3600 --json "$dir/beside.json" \
        <"$tmp/warm/secret" >/dev/null &
    warm_pid=$!
    started=$(date +%s.%N)
    harness "$dir/cold" --warmup --warmup-concurrency "$COLD_CONCURRENCY" --concurrency 1 \
        --duration 1 --max-requests 1 --json "$dir/rush.json" >/dev/null
    ended=$(date +%s.%N)
    after=$(cpu_ticks "$pid")
    kill -INT "$warm_pid" 2>/dev/null || true
    wait "$warm_pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ -s "$dir/beside.json" ] || die "$name: the warm harness wrote no report"

    local ok seconds server_cores
    ok=$(jq '.warmup.counts.ok' "$dir/rush.json")
    seconds=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')
    server_cores=$(awk -v t="$((after - before))" -v hz="$(getconf CLK_TCK)" -v s="$seconds" \
        'BEGIN { printf "%.2f", t / hz / s }')
    {
        printf '\n%s (%s)\n' "$name" "$bin"
        awk -v n="$ok" -v all="$COLD" -v s="$seconds" -v c="$CORES" -v u="$server_cores" 'BEGIN {
            printf "  first logins: %d of %d in %.1f s, %.0f/s (%.0f/s per core of the machine); server used %.2f cores\n", n, all, s, n / s, n / s / c, u
        }'
        for run in alone beside; do
            jq -r --arg run "$run" '"  warm logins \(if $run == "alone" then "alone          " else "beside the rush" end): p50 \(.latency_us.p50) µs, p99 \(.latency_us.p99) µs, max \(.latency_us.max) µs, \(.counts.accepts) accepted, \(.counts.timeouts) timeouts"' "$dir/$run.json"
        done
    } >>"$tmp/report.txt"
}

harness() {
    local dir=$1
    shift
    "$LOADTEST_BIN" run --server "127.0.0.1:$port" --secret-stdin --dir "$dir" --quiet \
        --scenario append "$@" <"$tmp/warm/secret"
}

: >"$tmp/report.txt"
rush tollgate "$TOLLGATE_BIN"
[ -z "$BASELINE_BIN" ] || rush baseline "$BASELINE_BIN"
printf 'Cold rush on %s cores: %s first logins, %s in flight, beside %s warm logins/s\n' \
    "$CORES" "$COLD" "$COLD_CONCURRENCY" "$RATE"
cat "$tmp/report.txt"
