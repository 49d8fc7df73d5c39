#!/usr/bin/env bash
# Offers Tollgate twice what it can answer and shows what it does with the excess.
#
# The harness on one core cannot offer twice the fast path's maximum, so the server gets a
# workload it answers far fewer of: every code is wrong and `[otp] hotp_lookahead = 1000`,
# so each request costs it 2,001 HOTP values. The users are passcode-only (no passwords, so
# many of them cost nothing to set up): each user has one request in flight at most, and a
# timed-out one holds its user for the harness's timeout, so USERS must be well above
# rate × timeout. The harness is told a look-ahead of 10 (`--hotp-lookahead 10`), since
# avoiding 2,001 codes per request would cost it more than the server; about 0.1 % of its
# "wrong" codes are therefore right and are counted as failures.
#
# The server runs pinned to SERVER_CORE (1) and the harness to HARNESS_CORE (0). The
# script measures the closed-loop maximum (16 in flight), then runs the open loop at
# LOW (0.78) of it once and at HIGH (2.0) of it REPEATS times (3), each DURATION seconds
# (10). For each run it prints what was offered and answered, the latency of the answered
# (from each request's intended send time), the requests the server shed
# (`tollgate_shed_total{gate="queue"}`) and those the harness saw time out, and the server's
# RSS after the run. The p99.9 of an overloaded run includes its first
# `radius.overload_after_ms` (50 ms), before shedding starts.
#
# Everything runs on loopback and stops by itself; it builds the release binaries if
# missing and removes its temporary directory at the end (KEEP=1 keeps it).
#
# Knobs (environment): USERS (20000), DURATION (10), REPEATS (3), LOW (0.78), HIGH (2.0),
# SERVER_CORE (1), HARNESS_CORE (0), TOLLGATE_BIN, LOADTEST_BIN.
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-20000}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
LOW=${LOW:-0.78}
HIGH=${HIGH:-2.0}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}
TIMEOUT_MS=300

SCRIPT=overload
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

need_commands jq:jq taskset:util-linux ss:iproute2 curl:curl
need_server_and_harness

say "setting up $USERS passcode-only users with HOTP seeds in $tmp"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/lt" >/dev/null
port=$(free_port)
metrics=$(free_port)
cat >"$tmp/tollgate.toml" <<EOF
data_dir = "$tmp/data"

[radius]
listen = ["127.0.0.1:$port"]

[otp]
hotp_lookahead = 1000

[lockout]
threshold = 0

[log]
level = "warn"

[metrics]
listen = "127.0.0.1:$metrics"
EOF
"$TOLLGATE_BIN" --config "$tmp/tollgate.toml" init >/dev/null
"$TOLLGATE_BIN" --config "$tmp/tollgate.toml" token import "$tmp/lt/seeds.csv" --create-users >/dev/null
"$TOLLGATE_BIN" --config "$tmp/tollgate.toml" client add loadtest --address 127.0.0.0/8 \
    --secret-stdin --mode passcode-only <"$tmp/lt/secret" >/dev/null
taskset -c "$SERVER_CORE" "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" serve >"$tmp/log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 1 50); do grep -q "listening on" "$tmp/log" && break; sleep 0.2; done
grep -q "listening on" "$tmp/log" || { cat "$tmp/log" >&2; die "the server did not start"; }

harness() {
    timeout $((DURATION + 120)) taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" run \
        --server "127.0.0.1:$port" --secret-stdin --dir "$tmp/lt" --scenario reject \
        --login passcode --hotp-lookahead 10 --timeout-ms "$TIMEOUT_MS" --quiet "$@" \
        <"$tmp/lt/secret" 2>>"$tmp/harness.err"
}
shed() {
    curl -s "127.0.0.1:$metrics/metrics" |
        awk '/^tollgate_shed_total\{gate="queue"\}/ { print $2; found = 1 } END { if (!found) print 0 }'
}

say "measuring the closed-loop maximum (16 in flight, $DURATION s)"
# The few right codes among the wrong ones make the harness exit non-zero; the report counts them.
harness --concurrency 16 --duration "$DURATION" --json "$tmp/max.json" >/dev/null || true
[ -s "$tmp/max.json" ] || { cat "$tmp/harness.err" >&2; die "the harness wrote no report"; }
max=$(jq '.throughput.answered_per_sec' "$tmp/max.json")
[ "$(awk -v m="$max" 'BEGIN { print (m > 0) }')" = 1 ] || die "the server answered nothing"
say "maximum $(printf '%.0f' "$max")/s"
need=$(awk -v m="$max" -v h="$HIGH" -v t="$TIMEOUT_MS" 'BEGIN { printf "%d", 2 * m * h * t / 1000 }')
[ "$USERS" -ge "$need" ] || say "warning: $USERS users may hold the offered rate back (each has one request in flight); $need or more are safer"

results="$tmp/results.tsv"
: >"$results"
measure() {
    local label=$1 fraction=$2 rate before after
    rate=$(awk -v m="$max" -v f="$fraction" 'BEGIN { printf "%d", m * f }')
    before=$(shed)
    rm -f "$tmp/run.json"
    harness --rate "$rate" --duration "$DURATION" --json "$tmp/run.json" >/dev/null || true
    [ -s "$tmp/run.json" ] || { cat "$tmp/harness.err" >&2; die "the harness wrote no report"; }
    after=$(shed)
    jq -r --arg name "$label" --argjson shed "$((after - before))" --arg rss "$(rss_mb "$server")" '
        [$name, .open_loop.rate_per_sec, .throughput.sent_per_sec, .throughput.answered_per_sec,
         .latency_us.p50, .latency_us.p99, .latency_us.p999, $shed, .counts.timeouts,
         .counts.failures, $rss] | @tsv' "$tmp/run.json" >>"$results"
    say "  $label: $(tail -n1 "$results" | awk -F'\t' '{ printf "offered %d/s (sent %.0f/s), answered %.0f/s, p50 %d µs, p99 %d µs, p99.9 %d µs, shed %d, timeouts %d, RSS %s MB", $2, $3, $4, $5, $6, $7, $8, $9, $11 }')"
}
measure "$LOW x" "$LOW"
for run in $(seq 1 "$REPEATS"); do measure "$HIGH x ($run)" "$HIGH"; done

printf '\noverload: wrong HOTP codes under a 1,000-code look-ahead, %s users, %s s runs, server on core %s, harness on core %s; closed-loop maximum %.0f/s\n\n' \
    "$USERS" "$DURATION" "$SERVER_CORE" "$HARNESS_CORE" "$max"
printf '%-10s %9s %8s %10s %8s %8s %9s %8s %9s %9s %7s\n' run offered/s sent/s answered/s p50_us p99_us p99.9_us shed timeouts failures rss_mb
awk -F'\t' '{ printf "%-10s %9d %8.0f %10.0f %8d %8d %9d %8d %9d %9d %7s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$results"
