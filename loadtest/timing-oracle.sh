#!/usr/bin/env bash
# Does the time of a reply tell which user names exist? Sends TRIES logins of unknown names
# and TRIES logins of real users with a wrong password (append mode, one at a time, cold
# password cache: a wrong password is never cached), in alternating chunks of CHUNK so that
# the machine's moods fall on both alike, and prints each kind's latency percentiles (the
# median over the chunks of each chunk's percentile), its minimum and maximum, and the
# ratio of the medians. With BASELINE_BIN, a second build gets the same store and traffic
# on a port of its own, measured in the same alternation.
#
# Everything runs on loopback, pinned like the other scripts (server on SERVER_CORE,
# harness on HARNESS_CORE), and stops by itself. Knobs (environment): USERS (100), TRIES
# (1000), CHUNK (100), SERVER_CORE (1), HARNESS_CORE (0), TOLLGATE_BIN, LOADTEST_BIN,
# BASELINE_BIN.
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-100}
TRIES=${TRIES:-1000}
CHUNK=${CHUNK:-100}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}
BASELINE_BIN=${BASELINE_BIN:-}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}

SCRIPT=timing-oracle
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

need_commands jq:jq taskset:util-linux ss:iproute2
need_server_and_harness
[ $((TRIES % CHUNK)) = 0 ] || die "TRIES must be a multiple of CHUNK"

say "setting up $USERS users with passwords in $tmp"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/lt" --passwords >/dev/null

# One server per build, each with its own copy of the same store.
start_server() {
    local name=$1 bin=$2 port
    port=$(free_port)
    mkdir -p "$tmp/$name"
    cat >"$tmp/$name/tollgate.toml" <<EOF
data_dir = "$tmp/$name/data"

[radius]
listen = ["127.0.0.1:$port"]

[lockout]
threshold = 0

[log]
level = "warn"
EOF
    if [ "$name" = tollgate ]; then
        "$bin" --config "$tmp/$name/tollgate.toml" init >/dev/null
        timeout 600 "$bin" --config "$tmp/$name/tollgate.toml" user import "$tmp/lt/users.csv" >/dev/null
        "$bin" --config "$tmp/$name/tollgate.toml" token import "$tmp/lt/seeds.csv" >/dev/null
        "$bin" --config "$tmp/$name/tollgate.toml" client add loadtest --address 127.0.0.0/8 \
            --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null
    else
        cp -a "$tmp/tollgate/data" "$tmp/$name/data"
    fi
    taskset -c "$SERVER_CORE" "$bin" --config "$tmp/$name/tollgate.toml" serve >"$tmp/$name.log" 2>&1 &
    pids+=("$!")
    wait_listening "$name" "$!" "$tmp/$name.log"
    echo "$port" >"$tmp/$name.port"
}
start_server tollgate "$TOLLGATE_BIN"
servers=tollgate
if [ -n "$BASELINE_BIN" ]; then
    [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN $BASELINE_BIN is not an executable"
    start_server baseline "$BASELINE_BIN"
    servers="tollgate baseline"
fi

results="$tmp/results.tsv"
: >"$results"
chunk() {
    local server=$1 kind=$2 run=$3 json
    json="$tmp/$server-$kind-$run.json"
    timeout 600 taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" run --server "127.0.0.1:$(cat "$tmp/$server.port")" \
        --secret-stdin --dir "$tmp/lt" --quiet --scenario mix --mix "$kind=1" --login append \
        --concurrency 1 --duration 600 --max-requests "$CHUNK" --timeout-ms 5000 \
        --json "$json" <"$tmp/lt/secret" >/dev/null
    jq -r --arg s "$server" --arg k "$kind" '[$s, $k, .counts.rejects, .latency_us.min,
        .latency_us.p50, .latency_us.p90, .latency_us.p99, .latency_us.max] | @tsv' "$json" >>"$results"
}
say "measuring: $TRIES logins of each kind per server, $CHUNK at a time, alternating"
for run in $(seq 1 $((TRIES / CHUNK))); do
    for server in $servers; do
        chunk "$server" unknown-user "$run"
        chunk "$server" bad-password "$run"
    done
    say "  chunk $run of $((TRIES / CHUNK)) done"
done

col() { awk -F'\t' -v s="$1" -v k="$2" -v c="$3" '$1 == s && $2 == k { print $c }' "$results"; }
printf '\n%s logins per kind and server, append mode, one at a time, cold cache; latency in µs\n' "$TRIES"
printf '(p50, p90, p99: the median over %s chunks of %s; min, max: over all)\n\n' $((TRIES / CHUNK)) "$CHUNK"
printf '%-9s %-13s %8s %8s %8s %8s %8s %8s\n' server kind rejects min p50 p90 p99 max
for server in $servers; do
    for kind in unknown-user bad-password; do
        printf '%-9s %-13s %8d %8d %8.0f %8.0f %8.0f %8d\n' "$server" "$kind" \
            "$(col "$server" "$kind" 3 | awk '{ s += $1 } END { print s }')" \
            "$(col "$server" "$kind" 4 | sort -g | head -n1)" \
            "$(col "$server" "$kind" 5 | median)" "$(col "$server" "$kind" 6 | median)" \
            "$(col "$server" "$kind" 7 | median)" "$(col "$server" "$kind" 8 | sort -g | tail -n1)"
    done
done
printf '\n'
for server in $servers; do
    awk -v s="$server" -v u="$(col "$server" unknown-user 5 | median)" -v b="$(col "$server" bad-password 5 | median)" 'BEGIN {
        printf "%s: median of unknown-user / median of bad-password = %.2f\n", s, (b > 0 ? u / b : 0)
    }'
done
