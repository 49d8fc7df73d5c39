#!/usr/bin/env bash
# Measures Tollgate's latency in an open loop at a share of its own maximum throughput.
#
# The server runs pinned to SERVER_CORE (default 1) and the harness to HARNESS_CORE (default
# 0). The script measures the closed-loop maximum first (16 in flight, DURATION seconds),
# then sends at FRACTION (default 0.8) of it in an open loop, REPEATS times (default 3),
# with the harness polling instead of sleeping between sends (`--spin`: a sleeping loop
# cannot keep a timetable of one send every 10 µs on this kind of machine). Latency is
# measured by the harness from each request's intended send time, so that its own lateness
# is counted too, and ends at the reply's arrival stamp on the harness's socket; the
# server's histogram (kernel arrival stamp to reply) says how much of the tail is the
# server's. Before and after the runs, `tollgate-loadtest hiccups` measures for DURATION
# seconds how often each of the two cores is taken away from a thread that never sleeps,
# and `tollgate-loadtest floor` plays the run's rate against those stalls with a perfect
# server: the floor under any tail latency measured here. The table shows each run, the
# medians, the stalls and the floors.
#
# VARIANTS names server configurations to compare side by side, each started once and
# measured in alternation: `default` (the shipped configuration) and `unprioritised`
# (`[scheduling] background_nice = 0, udp_slice_us = 0`: every thread at the same priority
# with the kernel's default slice). Default: `default` alone.
#
# Everything runs on loopback and stops by itself. It builds the release binaries if
# missing and removes its temporary directory at the end (KEEP=1 keeps it).
#
# Knobs (environment): USERS (1000), DURATION (10), REPEATS (3), FRACTION (0.8), RATE
# (overrides FRACTION), SERVICE_US (server time per request for the floor; 1e6 / the
# measured maximum unless set, none with RATE), VARIANTS (default), SERVER_CORE (1),
# HARNESS_CORE (0), TOLLGATE_BIN, LOADTEST_BIN.
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-1000}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
FRACTION=${FRACTION:-0.8}
VARIANTS=${VARIANTS:-default}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}

SCRIPT=open-loop
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

need_commands jq:jq taskset:util-linux ss:iproute2 curl:curl
need_server_and_harness

variant_config() {
    case $1 in
        default) ;;
        unprioritised) printf '[scheduling]\nbackground_nice = 0\nudp_slice_us = 0\n' ;;
        *) die "unknown variant $1 (default, unprioritised)" ;;
    esac
}

say "setting up $USERS users with passwords and HOTP seeds in $tmp"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/lt" --passwords >/dev/null

declare -A port metrics
for v in $VARIANTS; do
    d="$tmp/$v"
    mkdir -p "$d"
    # Each server gets its own copy of the users: the harness keeps every user's HOTP
    # counter in step with one server.
    cp -r "$tmp/lt" "$d/lt"
    port[$v]=$(free_port)
    metrics[$v]=$(free_port)
    # The credential cache keeps a verified password for cache_ttl_secs (600 by default,
    # less up to a quarter of jitter); the runs must not outlive the warm-up's entries, or
    # Argon2 checks of expired entries join the measurement.
    cat >"$d/tollgate.toml" <<EOF
data_dir = "$d/data"

[radius]
listen = ["127.0.0.1:${port[$v]}"]

[lockout]
threshold = 0

[log]
level = "warn"

[passwords]
cache_ttl_secs = 3600

[metrics]
listen = "127.0.0.1:${metrics[$v]}"

$(variant_config "$v")
EOF
    say "importing $USERS users into the $v server (Argon2id hashing takes a while)"
    "$TOLLGATE_BIN" --config "$d/tollgate.toml" init >/dev/null
    "$TOLLGATE_BIN" --config "$d/tollgate.toml" user import "$d/lt/users.csv" >/dev/null
    "$TOLLGATE_BIN" --config "$d/tollgate.toml" token import "$d/lt/seeds.csv" >/dev/null
    "$TOLLGATE_BIN" --config "$d/tollgate.toml" client add loadtest --address 127.0.0.0/8 \
        --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null
    taskset -c "$SERVER_CORE" "$TOLLGATE_BIN" --config "$d/tollgate.toml" serve >"$d/log" 2>&1 &
    pids+=("$!")
done

harness() {
    local v=$1
    shift
    timeout $((DURATION + 120)) taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" run \
        --server "127.0.0.1:${port[$v]}" --secret-stdin --dir "$tmp/$v/lt" --scenario append \
        --quiet "$@" <"$tmp/lt/secret"
}
for v in $VARIANTS; do
    for _ in $(seq 1 50); do grep -q "listening on" "$tmp/$v/log" && break; sleep 0.2; done
    grep -q "listening on" "$tmp/$v/log" || { cat "$tmp/$v/log" >&2; die "the $v server did not start"; }
    say "warming the $v server up (one Argon2 check per user)"
    harness "$v" --warmup --concurrency 1 --duration 1 --max-requests 1 --json "$tmp/warm.json" >/dev/null
    [ "$(jq '.warmup.counts.ok' "$tmp/warm.json")" = "$USERS" ] || die "the $v server refused a warm-up login"
done

# The server's own histogram of accepted logins, as "upper-bound count" lines.
server_buckets() {
    curl -s "127.0.0.1:${metrics[$1]}/metrics" |
        grep '^tollgate_radius_request_duration_seconds_bucket{client="loadtest",result="accept"' |
        sed 's/.*le="\([^"]*\)"} \(.*\)/\1 \2/'
}

first=${VARIANTS%% *}
if [ -z "${RATE:-}" ]; then
    say "measuring the closed-loop maximum of the $first server (16 in flight, $DURATION s)"
    harness "$first" --concurrency 16 --duration "$DURATION" --json "$tmp/max.json" >/dev/null
    max=$(jq '.throughput.answered_per_sec' "$tmp/max.json")
    RATE=$(awk -v m="$max" -v f="$FRACTION" 'BEGIN { printf "%d", m * f }')
    say "maximum $(printf '%.0f' "$max")/s; open loop at $RATE/s"
fi

# The machine's own stalls on both cores at once, measured while nothing else of ours runs:
# a stall of a few milliseconds on the server's core puts every request waiting there over
# 2 ms, and at 80 % load the queue it leaves takes about five times as long to drain; a
# stall of the harness's core sends late what was due meanwhile. `floor` then plays the
# run's rate against them with a perfect server (SERVICE_US of its core per request, the
# least the closed-loop maximum shows): the tail no server can beat in that window.
SERVICE_US=${SERVICE_US:-${max:+$(awk -v m="$max" 'BEGIN { printf "%.3f", 1e6 / m }')}}
stalls() {
    local when=$1
    say "measuring the machine's own stalls on cores $SERVER_CORE and $HARNESS_CORE ($DURATION s, $when the runs)"
    taskset -c "$SERVER_CORE" "$LOADTEST_BIN" hiccups --duration "$DURATION" \
        --json "$tmp/stalls-$when-server.json" >"$tmp/stalls-$when-server" &
    local hiccup_pid=$!
    taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" hiccups --duration "$DURATION" \
        --json "$tmp/stalls-$when-harness.json" >"$tmp/stalls-$when-harness"
    wait "$hiccup_pid"
    if [ -n "$SERVICE_US" ]; then
        "$LOADTEST_BIN" floor --rate "$RATE" --service-us "$SERVICE_US" \
            --harness "$tmp/stalls-$when-harness.json" --server "$tmp/stalls-$when-server.json" \
            >"$tmp/floor-$when"
    else
        echo "(no service time: set SERVICE_US along with RATE)" >"$tmp/floor-$when"
    fi
}
stalls before

results="$tmp/results.tsv"
: >"$results"
for run in $(seq 1 "$REPEATS"); do
    for v in $VARIANTS; do
        server_buckets "$v" >"$tmp/before"
        harness "$v" --rate "$RATE" --spin --duration "$DURATION" --json "$tmp/run.json" >/dev/null
        server_buckets "$v" >"$tmp/after"
        # Requests the server took over 1 ms and over 2 ms for, from the bucket deltas.
        read -r total over1 over2 < <(paste "$tmp/before" "$tmp/after" | awk '
            { d = $4 - $2; if ($1 == "+Inf") total = d; if ($1 == "0.001") le1 = d; if ($1 == "0.002") le2 = d }
            END { print total, total - le1, total - le2 }')
        jq -r --arg v "$v" --argjson total "$total" --argjson over1 "$over1" --argjson over2 "$over2" '
            [$v, .throughput.answered_per_sec, .latency_us.p50, .latency_us.p99, .latency_us.p999,
             .latency_us.max, .open_loop.late_sends, .open_loop.max_lateness_us,
             (if $total > 0 then 100 * $over1 / $total else 0 end),
             (if $total > 0 then 100 * $over2 / $total else 0 end),
             (.counts.failures + .counts.timeouts + .counts.bad_replies)] | @tsv' "$tmp/run.json" >>"$results"
        say "  $v run $run: $(tail -n1 "$results" | awk -F'\t' '{ printf "%.0f/s, p50 %d µs, p99 %d µs, p99.9 %d µs, max %d µs; %d sends > 1 ms late (max %d µs); server: %.3f %% > 1 ms, %.3f %% > 2 ms; %d errors", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }')"
    done
done

stalls after

col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$results" | median; }
printf '\nopen loop at %s/s, %s users, %s s x %s runs, server on core %s, harness on core %s (spinning); medians\n\n' \
    "$RATE" "$USERS" "$DURATION" "$REPEATS" "$SERVER_CORE" "$HARNESS_CORE"
printf '%-14s %10s %8s %8s %10s %9s %11s %15s %15s %7s\n' variant answered/s p50_us p99_us p99.9_us max_us late_sends 'server_>1ms_%' 'server_>2ms_%' errors
for v in $VARIANTS; do
    printf '%-14s %10.0f %8.0f %8.0f %10.0f %9.0f %11.0f %15.3f %15.3f %7.0f\n' "$v" "$(col "$v" 2)" \
        "$(col "$v" 3)" "$(col "$v" 4)" "$(col "$v" 5)" "$(col "$v" 6)" "$(col "$v" 7)" \
        "$(col "$v" 9)" "$(col "$v" 10)" "$(col "$v" 11)"
done
for when in before after; do
    printf '\nthe machine idle, %s the runs: server core %s: %s\n' "$when" "$SERVER_CORE" "$(head -n1 "$tmp/stalls-$when-server")"
    printf '                         harness core %s: %s\n' "$HARNESS_CORE" "$(head -n1 "$tmp/stalls-$when-harness")"
    printf '  floor: %s\n' "$(cat "$tmp/floor-$when")"
done
