#!/usr/bin/env bash
# Compares Tollgate with FreeRADIUS under the same load on this machine.
#
# Both servers get the same users and shared secret and run pinned to the same core
# (SERVER_CORE, default 1) while the harness runs pinned to another (HARNESS_CORE, default
# 0), so that they compete for the same CPU one at a time. FreeRADIUS checks a plain PAP
# password (the `files` and `pap` modules, Cleartext-Password); Tollgate checks password +
# HOTP code in append mode, which is more work per login, so the comparison is of the cost
# of a complete login in each. Each server's CPU time per accepted login comes from
# /proc/PID/stat (utime + stime before and after a run). Runs alternate between the servers,
# REPEATS times (default 3), and the table shows the medians and Tollgate/FreeRADIUS ratios.
#
# Everything runs on loopback and stops by itself; the whole script is bounded by the
# timeouts below (a few minutes with the defaults). It installs the Debian package
# freeradius if missing, builds the release binaries if missing, and leaves nothing behind
# but its temporary directory, which it removes (set KEEP=1 to keep it).
#
# Knobs (environment): USERS (1000), CONCURRENCY (16), DURATION (10 seconds per run),
# REPEATS (3), SERVER_CORE (1), HARNESS_CORE (0), TOLLGATE_BIN, LOADTEST_BIN, and
# BASELINE_BIN: a second Tollgate build (an older commit, say) given the same data and
# measured in the same runs, on the same core, as `baseline`, so that a change is judged by
# a ratio taken side by side rather than against figures of another day.
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-1000}
CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
SERVER_CORE=${SERVER_CORE:-1}
BASELINE_BIN=${BASELINE_BIN:-}
HARNESS_CORE=${HARNESS_CORE:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}

SCRIPT=compare-freeradius
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

# --- Prerequisites -------------------------------------------------------------------------
need_commands freeradius:freeradius jq:jq taskset:util-linux ss:iproute2
need_server_and_harness
CLK_TCK=$(getconf CLK_TCK)

# --- Users, shared secret ------------------------------------------------------------------
say "setting up $USERS users with passwords and HOTP seeds in $tmp"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/lt" --passwords >/dev/null
secret=$(head -n1 "$tmp/lt/secret")

# --- FreeRADIUS ----------------------------------------------------------------------------
fr_port=$(free_port)
fr="$tmp/freeradius"
mkdir -p "$fr/log" "$fr/run" "$fr/mods-config/files"
: >"$fr/dictionary"
tail -n +2 "$tmp/lt/users.csv" |
    awk -F, '{ printf "%s Cleartext-Password := \"%s\"\n", $1, $2 }' >"$fr/mods-config/files/authorize"
cat >"$fr/radiusd.conf" <<EOF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
datarootdir = /usr/share
dictdir = /usr/share/freeradius
libdir = /usr/lib/freeradius
raddbdir = $fr
confdir = $fr
modconfdir = $fr/mods-config
logdir = $fr/log
run_dir = $fr/run
db_dir = $fr
radacctdir = $fr/log
name = freeradius
pidfile = $fr/run/freeradius.pid
correct_escapes = true
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no

log {
    destination = stdout
    auth = no
    auth_badpass = no
    auth_goodpass = no
}

security {
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}

thread pool {
    start_servers = 8
    max_servers = 32
    min_spare_servers = 4
    max_spare_servers = 16
    max_requests_per_server = 0
    auto_limit_acct = no
}

client loadtest {
    ipaddr = 127.0.0.0/8
    secret = $secret
    require_message_authenticator = yes
}

modules {
    files {
        moddir = \${modconfdir}/files
        filename = \${moddir}/authorize
    }
    pap {
        normalise = no
    }
}

server default {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = $fr_port
    }
    authorize {
        files
        pap
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
    }
}
EOF
say "starting FreeRADIUS on 127.0.0.1:$fr_port (core $SERVER_CORE)"
taskset -c "$SERVER_CORE" freeradius -f -d "$fr" -l stdout >"$tmp/freeradius.log" 2>&1 &
fr_pid=$!
pids+=("$fr_pid")

# --- Tollgate ------------------------------------------------------------------------------
tg_port=$(free_port)
tg="$tmp/tollgate"
mkdir -p "$tg"
cat >"$tg/tollgate.toml" <<EOF
data_dir = "$tg/data"

[radius]
listen = ["127.0.0.1:$tg_port"]

[lockout]
threshold = 0

[log]
level = "warn"
EOF
tollgate() { "$TOLLGATE_BIN" --config "$tg/tollgate.toml" "$@"; }
say "importing $USERS users into Tollgate (Argon2id hashing takes a while)"
tollgate init >/dev/null
timeout 600 "$TOLLGATE_BIN" --config "$tg/tollgate.toml" user import "$tmp/lt/users.csv" >/dev/null
tollgate token import "$tmp/lt/seeds.csv" >/dev/null
tollgate client add loadtest --address 127.0.0.0/8 --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null
if [ -n "$BASELINE_BIN" ]; then
    # The same store, copied before either server runs, on a port of its own.
    [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN $BASELINE_BIN is not an executable"
    bl_port=$(free_port)
    bl="$tmp/baseline"
    mkdir -p "$bl"
    cp -a "$tg/data" "$bl/data"
    cp -a "$tmp/lt" "$tmp/lt-baseline"
    sed -e "s|$tg/data|$bl/data|" -e "s|127.0.0.1:$tg_port|127.0.0.1:$bl_port|" \
        "$tg/tollgate.toml" >"$bl/tollgate.toml"
    say "starting the baseline Tollgate on 127.0.0.1:$bl_port (core $SERVER_CORE)"
    taskset -c "$SERVER_CORE" "$BASELINE_BIN" --config "$bl/tollgate.toml" serve >"$tmp/baseline.log" 2>&1 &
    bl_pid=$!
    pids+=("$bl_pid")
fi
say "starting Tollgate on 127.0.0.1:$tg_port (core $SERVER_CORE)"
taskset -c "$SERVER_CORE" "$TOLLGATE_BIN" --config "$tg/tollgate.toml" serve >"$tmp/tollgate.log" 2>&1 &
tg_pid=$!
pids+=("$tg_pid")

# The harness's options per server. FreeRADIUS 3.2.1 (Debian 12) predates the BlastRADIUS
# fixes of 3.2.5 and signs its replies without a Message-Authenticator, so the harness must
# accept such replies from it; Tollgate's replies are held to the strict rule.
fr_args="--scenario pap --reply-message-authenticator optional"
tg_args="--scenario append"

# Wait until both answer a login.
# The harness keeps each user's HOTP counter in its directory: the baseline, whose counters
# move on their own, gets a copy of its own ($tmp/lt-baseline).
harness() {
    local port=$1 dir="$tmp/lt"
    shift
    [ "$port" != "${bl_port:-}" ] || dir="$tmp/lt-baseline"
    timeout $((DURATION + 120)) taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" run \
        --server "127.0.0.1:$port" --secret-stdin --dir "$dir" --quiet "$@" <"$tmp/lt/secret"
}
for _ in $(seq 1 100); do
    if harness "$fr_port" $fr_args --concurrency 1 --duration 1 --max-requests 1 --timeout-ms 200 \
        --json "$tmp/probe.json" >/dev/null 2>&1 && [ "$(jq .counts.accepts "$tmp/probe.json")" = 1 ]; then
        break
    fi
    kill -0 "$fr_pid" 2>/dev/null || { cat "$tmp/freeradius.log" >&2; die "FreeRADIUS did not start"; }
    sleep 0.2
done
[ "$(jq .counts.accepts "$tmp/probe.json")" = 1 ] || { cat "$tmp/freeradius.log" >&2; die "FreeRADIUS does not accept logins"; }
grep -q "listening on" "$tmp/tollgate.log" 2>/dev/null || sleep 1

# Tollgate hashes a password with Argon2 on a user's first login only; log everyone in once
# so that the measured runs see the steady state, as a production server would after a while.
say "warming Tollgate up (one Argon2 check per user)"
harness "$tg_port" $tg_args --warmup --concurrency 1 --duration 1 --max-requests 1 \
    --json "$tmp/warmup.json" >/dev/null
[ "$(jq '.warmup.counts.ok' "$tmp/warmup.json")" = "$USERS" ] ||
    { cat "$tmp/tollgate.log" >&2; die "Tollgate did not accept every user during the warm-up"; }
if [ -n "$BASELINE_BIN" ]; then
    harness "$bl_port" $tg_args --warmup --concurrency 1 --duration 1 --max-requests 1 \
        --json "$tmp/warmup-baseline.json" >/dev/null
    [ "$(jq '.warmup.counts.ok' "$tmp/warmup-baseline.json")" = "$USERS" ] ||
        { cat "$tmp/baseline.log" >&2; die "the baseline did not accept every user during the warm-up"; }
fi
# FreeRADIUS gets the same short warm-up, so that its thread pool is up to size.
harness "$fr_port" $fr_args --concurrency "$CONCURRENCY" --duration 1 >/dev/null

# --- Measured runs -------------------------------------------------------------------------
results="$tmp/results.tsv"
: >"$results"
measure() {
    local name=$1 pid=$2 port=$3 args=$4 run=$5
    local json="$tmp/$name-$run.json" before after
    before=$(cpu_ticks "$pid")
    # $args holds several options and is split into words on purpose.
    # shellcheck disable=SC2086
    harness "$port" $args --concurrency "$CONCURRENCY" --duration "$DURATION" \
        --json "$json" >/dev/null
    after=$(cpu_ticks "$pid")
    jq -r --arg name "$name" --argjson ticks "$((after - before))" --argjson hz "$CLK_TCK" '
        [$name,
         .throughput.accepts_per_sec,
         .latency_us.p50, .latency_us.p99,
         (if .counts.accepts > 0 then ($ticks / $hz * 1e6 / .counts.accepts) else 0 end),
         (.counts.failures + .counts.timeouts + .counts.bad_replies),
         .harness_cpu.cores_used] | @tsv' "$json" >>"$results"
    say "  $name run $run: $(tail -n1 "$results" | awk -F'\t' '{ printf "%.0f accepts/s, p50 %d µs, p99 %d µs, %.1f µs CPU per accept, %d errors", $2, $3, $4, $5, $6 }')"
}
say "measuring: $REPEATS x $DURATION s per server, closed loop, concurrency $CONCURRENCY"
for run in $(seq 1 "$REPEATS"); do
    measure freeradius "$fr_pid" "$fr_port" "$fr_args" "$run"
    measure tollgate "$tg_pid" "$tg_port" "$tg_args" "$run"
    if [ -n "$BASELINE_BIN" ]; then
        measure baseline "$bl_pid" "$bl_port" "$tg_args" "$run"
    fi
done

# --- Table of medians ----------------------------------------------------------------------
col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$results" | median; }
printf '\n%s\n' "FreeRADIUS $(freeradius -v 2>/dev/null | head -n1 | sed 's/.*Version \([^ ,]*\).*/\1/') (PAP, files) vs Tollgate (append: password + HOTP)"
printf '%s users, closed loop of %s, %s s x %s runs, servers on core %s, harness on core %s; medians\n\n' \
    "$USERS" "$CONCURRENCY" "$DURATION" "$REPEATS" "$SERVER_CORE" "$HARNESS_CORE"
printf '%-11s %13s %9s %9s %17s %8s\n' server accepts/s p50_us p99_us cpu_us/accept errors
names="freeradius tollgate"
[ -z "$BASELINE_BIN" ] || names="$names baseline"
for name in $names; do
    printf '%-11s %13.0f %9.0f %9.0f %17.1f %8.0f\n' "$name" "$(col "$name" 2)" "$(col "$name" 3)" \
        "$(col "$name" 4)" "$(col "$name" 5)" "$(col "$name" 6)"
done
awk -v ft="$(col freeradius 2)" -v tt="$(col tollgate 2)" -v fc="$(col freeradius 5)" -v tc="$(col tollgate 5)" 'BEGIN {
    printf "\nratio tollgate/freeradius: throughput %.2f, CPU per accept %.2f\n", (ft > 0 ? tt / ft : 0), (fc > 0 ? tc / fc : 0)
}'
if [ -n "$BASELINE_BIN" ]; then
    awk -v bt="$(col baseline 2)" -v tt="$(col tollgate 2)" -v bc="$(col baseline 5)" -v tc="$(col tollgate 5)" 'BEGIN {
        printf "ratio tollgate/baseline:   throughput %.2f, CPU per accept %.2f\n", (bt > 0 ? tt / bt : 0), (bc > 0 ? tc / bc : 0)
    }'
fi
