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
# Tollgate is measured at its default settings: every decision goes to the audit trail (a
# line in the log). Beside it, in the same runs, the same binary with its log turned down to
# warnings (`quiet`: no audit lines), and, when BASELINE_BIN is set, that binary at its
# defaults (`baseline`). Each instance has a copy of the same store and a port of its own.
tg="$tmp/tollgate"
mkdir -p "$tg"
cat >"$tg/tollgate.toml" <<EOF
data_dir = "$tg/data"

[radius]
listen = ["127.0.0.1:0"]

[lockout]
threshold = 0
EOF
tollgate() { "$TOLLGATE_BIN" --config "$tg/tollgate.toml" "$@"; }
say "importing $USERS users into Tollgate (Argon2id hashing takes a while)"
tollgate init >/dev/null
timeout 600 "$TOLLGATE_BIN" --config "$tg/tollgate.toml" user import "$tmp/lt/users.csv" >/dev/null
tollgate token import "$tmp/lt/seeds.csv" >/dev/null
tollgate client add loadtest --address 127.0.0.0/8 --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null

# Each instance: its binary, port, directory (a copy of the store, taken before any server
# runs) and harness directory (a copy of the users' HOTP counters, which move on their own).
declare -A inst_bin inst_port inst_pid rss_warm rss_end
instances="tollgate quiet"
[ -z "$BASELINE_BIN" ] || instances="$instances baseline"
[ -z "$BASELINE_BIN" ] || [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN $BASELINE_BIN is not an executable"
for name in $instances; do
    case $name in
    tollgate | quiet) inst_bin[$name]=$TOLLGATE_BIN ;;
    baseline) inst_bin[$name]=$BASELINE_BIN ;;
    esac
    inst_port[$name]=$(free_port)
    [ "$name" = tollgate ] || cp -a "$tg" "$tmp/$name"
    cp -a "$tmp/lt" "$tmp/lt-$name"
    sed -i -e "s|$tg/data|$tmp/$name/data|" -e "s|^listen = .*|listen = [\"127.0.0.1:${inst_port[$name]}\"]|" \
        "$tmp/$name/tollgate.toml"
    [ "$name" != quiet ] || printf '\n[log]\nlevel = "warn"\n' >>"$tmp/$name/tollgate.toml"
done
for name in $instances; do
    say "starting $name (${inst_bin[$name]}) on 127.0.0.1:${inst_port[$name]} (core $SERVER_CORE)"
    taskset -c "$SERVER_CORE" "${inst_bin[$name]}" --config "$tmp/$name/tollgate.toml" serve \
        >"$tmp/$name.log" 2>&1 &
    inst_pid[$name]=$!
    pids+=("${inst_pid[$name]}")
done

# The harness's options per server. FreeRADIUS 3.2.1 (Debian 12) predates the BlastRADIUS
# fixes of 3.2.5 and signs its replies without a Message-Authenticator, so the harness must
# accept such replies from it; Tollgate's replies are held to the strict rule.
fr_args="--scenario pap --reply-message-authenticator optional"
tg_args="--scenario append"

# Wait until both answer a login.
harness() {
    local port=$1 dir="$tmp/lt" name
    shift
    for name in $instances; do
        [ "$port" != "${inst_port[$name]}" ] || dir="$tmp/lt-$name"
    done
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
for name in $instances; do
    wait_listening "$name" "${inst_pid[$name]}" "$tmp/$name.log"
done

# Tollgate hashes a password with Argon2 on a user's first login only; log everyone in once
# so that the measured runs see the steady state, as a production server would after a while.
for name in $instances; do
    say "warming $name up (one Argon2 check per user)"
    harness "${inst_port[$name]}" $tg_args --warmup --concurrency 1 --duration 1 --max-requests 1 \
        --json "$tmp/warmup-$name.json" >/dev/null
    [ "$(jq '.warmup.counts.ok' "$tmp/warmup-$name.json")" = "$USERS" ] ||
        { cat "$tmp/$name.log" >&2; die "$name did not accept every user during the warm-up"; }
    rss_warm[$name]=$(rss_mb "${inst_pid[$name]}")
done
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
    for name in $instances; do
        measure "$name" "${inst_pid[$name]}" "${inst_port[$name]}" "$tg_args" "$run"
    done
done

# --- The audit trail: a line per decision ----------------------------------------------------
# A server writes what its audit trail holds when it stops: stop them, then count the
# decision lines of each server at its defaults against the decisions its clients were
# answered (warm-up and measured runs).
for name in $instances; do
    rss_end[$name]=$(rss_mb "${inst_pid[$name]}")
    kill -TERM "${inst_pid[$name]}" 2>/dev/null || true
done
for name in $instances; do
    wait "${inst_pid[$name]}" 2>/dev/null || true
done
audit_counts=""
for name in $instances; do
    [ "$name" != quiet ] || continue
    answered=$(jq -s '[.[] | (.counts.answered // 0) + (.warmup.counts.answered // 0)] | add' \
        "$tmp/warmup-$name.json" "$tmp/$name"-[0-9]*.json)
    lines=$(grep -c "tollgate::audit: login decision" "$tmp/$name.log" || true)
    audit_counts+=$(printf '%-11s %s audit lines for %s decisions answered\n' "$name" "$lines" "$answered")$'\n'
done
rss=""
for name in $instances; do
    rss+=$(printf '%-11s RSS %s MB after %s cold logins (the warm-up), %s MB after the runs\n' \
        "$name" "${rss_warm[$name]}" "$USERS" "${rss_end[$name]}")$'\n'
done

# --- Table of medians ----------------------------------------------------------------------
col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$results" | median; }
printf '\n%s\n' "FreeRADIUS $(freeradius -v 2>/dev/null | head -n1 | sed 's/.*Version \([^ ,]*\).*/\1/') (PAP, files) vs Tollgate (append: password + HOTP)"
printf '%s users, closed loop of %s, %s s x %s runs, servers on core %s, harness on core %s; medians\n' \
    "$USERS" "$CONCURRENCY" "$DURATION" "$REPEATS" "$SERVER_CORE" "$HARNESS_CORE"
printf 'tollgate: default settings (audit line per decision); quiet: [log] level = "warn"\n\n'
printf '%-11s %13s %9s %9s %17s %8s\n' server accepts/s p50_us p99_us cpu_us/accept errors
for name in freeradius $instances; do
    printf '%-11s %13.0f %9.0f %9.0f %17.1f %8.0f\n' "$name" "$(col "$name" 2)" "$(col "$name" 3)" \
        "$(col "$name" 4)" "$(col "$name" 5)" "$(col "$name" 6)"
done
ratio() {
    awk -v label="$1" -v a="$(col "$2" 2)" -v b="$(col "$3" 2)" -v ac="$(col "$2" 5)" -v bc="$(col "$3" 5)" 'BEGIN {
        printf "ratio %-24s throughput %.2f, CPU per accept %.2f\n", label ":", (b > 0 ? a / b : 0), (bc > 0 ? ac / bc : 0)
    }'
}
printf '\n'
ratio tollgate/freeradius tollgate freeradius
ratio quiet/freeradius quiet freeradius
ratio tollgate/quiet tollgate quiet
[ -z "$BASELINE_BIN" ] || ratio tollgate/baseline tollgate baseline
printf '\n%s' "$audit_counts"
printf '\n%s' "$rss"
