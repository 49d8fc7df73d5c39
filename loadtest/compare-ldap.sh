#!/usr/bin/env bash
# Measures what Tollgate adds to an LDAP directory: logins against one slapd driven directly,
# then with Tollgate in the path.
#
# One slapd (tests/src/bin/slapd-fixture.rs: the test harness's directory with USERS load
# users load00000… whose password is load-pass) serves both runs:
#  direct    ldap-login-bench does per login exactly the directory work of a Tollgate login:
#            a subtree search for (&(objectClass=inetOrgPerson)(uid=…)) as the service
#            account, then a simple bind as the DN found, over LDAPS, on pooled connections
#            (SEARCH_CONNECTIONS bound as the service account, BIND_CONNECTIONS for users,
#            one operation at a time on each, as Tollgate's pools);
#  tollgate  tollgate-loadtest sends RADIUS Access-Requests (PAP: the password alone) to a
#            Tollgate whose default [[ldap]] domain is that slapd over LDAPS with the same
#            pool sizes, users without group rules being password-only (`others`), so each
#            login is that same search and bind, plus RADIUS and Tollgate's own work.
# Same closed loop (CONCURRENCY in flight), same duration, same users round-robin. With
# PIN=1 (default) slapd runs alone on SLAPD_CORE in both runs, and everything else (the bench;
# or Tollgate and the RADIUS harness) on CLIENT_CORE, so the directory gets the same CPU in
# both and Tollgate pays for its own work from the client's core, as the bench pays for its
# LDAP client work. CPU time per login of slapd and of Tollgate comes from /proc/PID/stat
# (utime + stime before and after a run); the bench and the harness report their own.
# Runs alternate (direct, tollgate, direct, …) REPEATS times (default 3); the table shows
# medians and what Tollgate adds.
#
# Everything runs on loopback and stops by itself; the whole script is bounded by the
# timeouts below (about two minutes with the defaults on a quiet machine, plus the build and
# at most QUIET_WAIT before each run). It builds the release binaries (cargo,
# CARGO_TARGET_DIR respected) unless BUILD=0, and leaves nothing behind but its temporary
# directory, which it removes (set KEEP=1 to keep it). slapd-fixture reads its standard
# input from a FIFO this script holds open, so slapd goes away even if the script is killed.
#
# Knobs (environment): USERS (10000), CONCURRENCY (16), DURATION (10 seconds per run),
# REPEATS (3), SEARCH_CONNECTIONS (2), BIND_CONNECTIONS (4), PIN (1), SLAPD_CORE (1),
# CLIENT_CORE (0), BUILD (1), QUIET_WAIT (120: seconds to wait before each run for the machine
# to be idle; 0 to not wait).
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-10000}
CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
SEARCH_CONNECTIONS=${SEARCH_CONNECTIONS:-2}
BIND_CONNECTIONS=${BIND_CONNECTIONS:-4}
PIN=${PIN:-1}
SLAPD_CORE=${SLAPD_CORE:-1}
CLIENT_CORE=${CLIENT_CORE:-0}
QUIET_WAIT=${QUIET_WAIT:-120}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release

SCRIPT=compare-ldap
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"
# The FIFO that keeps slapd-fixture alive is closed before the processes are stopped.
before_cleanup() { exec 3>&-; }

# --- Prerequisites -------------------------------------------------------------------------
need_commands slapd:slapd ldapwhoami:ldap-utils openssl:openssl jq:jq taskset:util-linux ss:iproute2
if [ "${BUILD:-1}" = 1 ]; then
    say "building the release binaries in $TARGET_DIR"
    cargo build --release -q -p tollgate-actors --bin tollgate \
        -p tollgate-loadtest --bin tollgate-loadtest --bin ldap-login-bench \
        -p tollgate-tests --bin slapd-fixture
fi
for b in tollgate tollgate-loadtest ldap-login-bench slapd-fixture; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run with BUILD=1)"
done
cores=$(nproc)
if [ "$PIN" = 1 ]; then
    [ "$SLAPD_CORE" -lt "$cores" ] && [ "$CLIENT_CORE" -lt "$cores" ] ||
        die "SLAPD_CORE and CLIENT_CORE must be below the $cores cores of this machine"
    [ "$SLAPD_CORE" != "$CLIENT_CORE" ] || die "SLAPD_CORE and CLIENT_CORE must differ"
    on_slapd_core=(taskset -c "$SLAPD_CORE")
    on_client_core=(taskset -c "$CLIENT_CORE")
else
    on_slapd_core=()
    on_client_core=()
fi
CLK_TCK=$(getconf CLK_TCK)

# Busy ticks of the whole machine (user, nice, system, irq, softirq, steal from /proc/stat),
# to tell how much CPU processes other than ours took during a run.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
now() { date +%s.%N; }
# Waits (at most QUIET_WAIT seconds) for a second in which the machine is nearly idle, so that
# a run does not start in the middle of someone else's build on a shared machine.
wait_quiet() {
    local m0 m1 i
    for ((i = 0; i < QUIET_WAIT; i++)); do
        m0=$(machine_ticks)
        sleep 1
        m1=$(machine_ticks)
        [ $((m1 - m0)) -le $((CLK_TCK / 5)) ] && return
    done
    say "  (the machine stayed busy for $QUIET_WAIT s; measuring anyway)"
}

# --- The directory -------------------------------------------------------------------------
# The fixture's standard input is a FIFO this shell holds open: if the script dies, even by
# SIGKILL, the fixture reads end-of-file and takes slapd down with it.
say "starting slapd with $USERS load users"
start_slapd_fixture fixture "$USERS" 3 "${on_slapd_core[@]}"
fact() { fixture_fact fixture "$1"; }
ldaps_url=$(fact ldaps_url)
ca_file=$(fact ca_file)
slapd_pid=$(fact pid)
say "slapd (pid $slapd_pid) on $ldaps_url"

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

[[ldap]]
domain = "example.com"
default = true
servers = ["$ldaps_url"]
ca_file = "$ca_file"
bind_dn = "$(fact service_dn)"
bind_password = "$(fact service_password)"
base_dn = "$(fact base_dn)"
others = "password-only"
search_connections = $SEARCH_CONNECTIONS
bind_connections = $BIND_CONNECTIONS
EOF
harness_directory_users "$tmp/lt" "$USERS" "$(fact load_password)"
"$BIN/tollgate" --config "$tg/tollgate.toml" init >/dev/null
"$BIN/tollgate" --config "$tg/tollgate.toml" client add loadtest --address 127.0.0.0/8 \
    --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null
say "starting Tollgate on 127.0.0.1:$tg_port"
"${on_client_core[@]}" "$BIN/tollgate" --config "$tg/tollgate.toml" serve >"$tmp/tollgate.log" 2>&1 3>&- &
tg_pid=$!
pids+=("$tg_pid")

tg_run() {
    timeout $((DURATION + 120)) "${on_client_core[@]}" "$BIN/tollgate-loadtest" run \
        --server "127.0.0.1:$tg_port" --secret-stdin --dir "$tmp/lt" --quiet --scenario pap \
        "$@" <"$tmp/lt/secret" 3>&-
}
bench() {
    timeout $((DURATION + 120)) "${on_client_core[@]}" "$BIN/ldap-login-bench" --url "$ldaps_url" --ca-file "$ca_file" \
        --base-dn "$(fact base_dn)" --bind-dn "$(fact service_dn)" \
        --bind-password "$(fact service_password)" --user-password "$(fact load_password)" \
        --users "$USERS" --search-connections "$SEARCH_CONNECTIONS" \
        --bind-connections "$BIND_CONNECTIONS" "$@" 3>&-
}

# Wait until Tollgate accepts a login through the directory.
for _ in $(seq 1 100); do
    if tg_run --concurrency 1 --duration 1 --max-requests 1 --timeout-ms 1000 \
        --json "$tmp/probe.json" >/dev/null 2>&1 && [ "$(jq .counts.accepts "$tmp/probe.json")" = 1 ]; then
        break
    fi
    kill -0 "$tg_pid" 2>/dev/null || { cat "$tmp/tollgate.log" >&2; die "Tollgate did not start"; }
    sleep 0.2
done
[ "$(jq .counts.accepts "$tmp/probe.json" 2>/dev/null)" = 1 ] ||
    { cat "$tmp/tollgate.log" >&2; die "Tollgate does not accept directory logins"; }

# Both sides open their connections and warm slapd's caches before anything is measured.
# Tollgate keeps its connections between runs; each bench run opens its own before its
# clock starts.
say "warming up"
tg_run --concurrency "$CONCURRENCY" --duration 2 >/dev/null
bench --concurrency "$CONCURRENCY" --duration 2 --warmup 0 >/dev/null

# --- Measured runs -------------------------------------------------------------------------
# Columns: path, logins/s, p50 µs, p99 µs, slapd CPU µs/login, server CPU µs/login (Tollgate;
# 0 for direct), driver CPU µs/login (bench or RADIUS harness), errors, and the cores that
# everything else on the machine used meanwhile (other processes, and kernel work such as
# loopback softirqs not charged to ours): a run with much of it was disturbed.
results="$tmp/results.tsv"
: >"$results"
per_login() { awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }'; }
# other_cores MACHINE_TICKS OUR_TICKS DRIVER_CPU_SECS WALL_SECS
other_cores() { awk -v m="$1" -v o="$2" -v d="$3" -v w="$4" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (m - o) / hz / w - d / w }'; }
report_line() {
    say "  $1 run $2: $(tail -n1 "$results" | awk -F'\t' '{ printf "%.0f logins/s, p50 %d µs, p99 %d µs, slapd %.1f µs CPU/login, tollgate %.1f, driver %.1f, %d errors, other %.2f cores", $2, $3, $4, $5, $6, $7, $8, $9 }')"
}
measure_direct() {
    local run=$1 json="$tmp/direct-$1.json" s0 s1 m0 m1 w0 w1 n
    m0=$(machine_ticks) w0=$(now) s0=$(cpu_ticks "$slapd_pid")
    bench --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 0 --json "$json" >/dev/null ||
        say "  (the bench reported failures)"
    s1=$(cpu_ticks "$slapd_pid") w1=$(now) m1=$(machine_ticks)
    n=$(jq .counts.ok "$json")
    jq -r --arg slapd "$(per_login $((s1 - s0)) "$n")" \
        --arg other "$(other_cores $((m1 - m0)) $((s1 - s0)) "$(jq '.cpu.user_secs + .cpu.system_secs' "$json")" \
            "$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')")" '
        ["direct", .logins_per_sec, .latency_us.p50, .latency_us.p99, ($slapd | tonumber), 0,
         .cpu.us_per_login, (.counts.not_found + .counts.bind_refused + .counts.errors),
         ($other | tonumber)] | @tsv' \
        "$json" >>"$results"
    report_line direct "$run"
}
measure_tollgate() {
    local run=$1 json="$tmp/tollgate-$1.json" s0 s1 t0 t1 m0 m1 w0 w1 n
    m0=$(machine_ticks) w0=$(now) s0=$(cpu_ticks "$slapd_pid") t0=$(cpu_ticks "$tg_pid")
    tg_run --concurrency "$CONCURRENCY" --duration "$DURATION" --json "$json" >/dev/null
    t1=$(cpu_ticks "$tg_pid") s1=$(cpu_ticks "$slapd_pid") w1=$(now) m1=$(machine_ticks)
    n=$(jq .counts.accepts "$json")
    jq -r --arg slapd "$(per_login $((s1 - s0)) "$n")" --arg tg "$(per_login $((t1 - t0)) "$n")" \
        --arg other "$(other_cores $((m1 - m0)) $((s1 - s0 + t1 - t0)) \
            "$(jq '.harness_cpu.user_secs + .harness_cpu.system_secs' "$json")" \
            "$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')")" '
        ["tollgate", .throughput.accepts_per_sec, .latency_us.p50, .latency_us.p99,
         ($slapd | tonumber), ($tg | tonumber),
         (if .counts.accepts > 0 then (.harness_cpu.user_secs + .harness_cpu.system_secs) * 1e6 / .counts.accepts else 0 end),
         (.counts.failures + .counts.timeouts + .counts.bad_replies), ($other | tonumber)] | @tsv' \
        "$json" >>"$results"
    report_line tollgate "$run"
}
say "measuring: $REPEATS x $DURATION s per path, closed loop, $CONCURRENCY in flight"
for run in $(seq 1 "$REPEATS"); do
    wait_quiet
    measure_direct "$run"
    wait_quiet
    measure_tollgate "$run"
done

# --- Table of medians ----------------------------------------------------------------------
col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$results" | median; }
if [ "$PIN" = 1 ]; then
    placing="slapd alone on core $SLAPD_CORE; bench, or Tollgate + RADIUS harness, on core $CLIENT_CORE"
else
    placing="unpinned on $cores cores"
fi
printf '\n%s\n' "slapd $(slapd -VV 2>&1 | sed -n 's/.*slapd \([0-9.]*\).*/\1/p' | head -n1) over LDAPS: direct (ldap-login-bench: search + bind) vs via Tollgate (RADIUS PAP, password-only domain)"
printf '%s users, closed loop of %s, %s s x %s runs, %s search + %s bind connections, %s; medians\n\n' \
    "$USERS" "$CONCURRENCY" "$DURATION" "$REPEATS" "$SEARCH_CONNECTIONS" "$BIND_CONNECTIONS" "$placing"
printf '%-9s %9s %7s %7s %15s %18s %16s %7s %12s\n' path logins/s p50_us p99_us \
    slapd_cpu_us/l tollgate_cpu_us/l driver_cpu_us/l errors other_cores
for name in direct tollgate; do
    printf '%-9s %9.0f %7.0f %7.0f %15.1f %18.1f %16.1f %7.0f %12.2f\n' "$name" "$(col "$name" 2)" \
        "$(col "$name" 3)" "$(col "$name" 4)" "$(col "$name" 5)" "$(col "$name" 6)" \
        "$(col "$name" 7)" "$(col "$name" 8)" "$(col "$name" 9)"
done
awk -v dt="$(col direct 2)" -v tt="$(col tollgate 2)" \
    -v d50="$(col direct 3)" -v t50="$(col tollgate 3)" \
    -v d99="$(col direct 4)" -v t99="$(col tollgate 4)" \
    -v ds="$(col direct 5)" -v tc="$(col tollgate 6)" -v dc="$(col direct 7)" 'BEGIN {
    printf "\ntollgate/direct: throughput %.3f (%+.1f %%)\n", (dt > 0 ? tt / dt : 0), (dt > 0 ? (tt / dt - 1) * 100 : 0)
    printf "added latency:   p50 %+d µs (%+.1f %%), p99 %+d µs (%+.1f %%)\n", t50 - d50, (d50 > 0 ? (t50 / d50 - 1) * 100 : 0), t99 - d99, (d99 > 0 ? (t99 / d99 - 1) * 100 : 0)
    printf "CPU per login:   Tollgate %.1f µs = %.1f %% of slapd'"'"'s %.1f µs (the bench'"'"'s LDAP client alone: %.1f µs)\n", tc, (ds > 0 ? tc / ds * 100 : 0), ds, dc
}'
awk -F'\t' '$9 > 0.25 { n++ } END { if (n) printf "warning: %d run(s) shared the machine with other work (other_cores > 0.25): rerun on a quiet machine\n", n }' "$results"
