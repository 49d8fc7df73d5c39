#!/usr/bin/env bash
# Fault under load: the primary directory server is SIGKILLed (or frozen) while directory
# logins run, and started again (or thawed) later.
#
# Two slapd (tests/src/bin/slapd-fixture.rs, each the test harness's directory with USERS
# load users load00000… whose password is load-pass) serve one [[ldap]] domain of a Tollgate
# over LDAPS, the first listed (primary) first. tollgate-loadtest sends RADIUS PAP logins in
# an open loop at RATE per second for DURATION seconds (each a search and a bind on the
# directory, as in compare-ldap.sh); KILL_AT seconds in, the primary slapd is SIGKILLed, and
# RESTART_AT seconds in it is started again on the same ports. Tollgate probes a dead server
# every RETRY_SECS. With FAULT=hang the primary is frozen instead (SIGSTOP, then SIGCONT):
# its connections stay open and nothing answers, as a server that hangs or a network that
# drops everything, so Tollgate learns of it only when an operation times out
# (OP_TIMEOUT_MS, the domain's operation_timeout_ms).
#
# It prints: every login answered or not (timeouts are logins left hanging: the harness waits
# TIMEOUT_MS for each), failures (a login refused because no server answered), the latency
# of the logins that were in flight when the primary died (the seconds around KILL_AT), the
# time from the kill to Tollgate's "marked dead" and from the restart to "answers again",
# and which slapd did the work in each phase (its CPU time per login: before the kill, while
# the primary was dead, after it came back). It fails (exit 1) when a login timed out or
# failed, when the slowest login in flight across the kill took 1 s or more, or when the
# traffic did not go back to the primary. With FAULT=hang, logins refused meanwhile
# (`overloaded`: more than the domain's queue of 256 waited on the frozen server) are
# counted, not failed, and the slowest login may take OP_TIMEOUT_MS plus 1 s.
#
# Knobs (environment): FAULT (kill or hang), USERS (2000), RATE (2000), DURATION (30), KILL_AT
# (10), RESTART_AT (20), RETRY_SECS (2), OP_TIMEOUT_MS (3000), TIMEOUT_MS (5000), BUILD (1),
# KEEP (0: keep the temporary directory).
# Everything runs on loopback and stops by itself within about DURATION + 60 s.
set -euo pipefail

cd "$(dirname "$0")/.."
FAULT=${FAULT:-kill}
OP_TIMEOUT_MS=${OP_TIMEOUT_MS:-3000}
USERS=${USERS:-2000}
RATE=${RATE:-2000}
DURATION=${DURATION:-30}
KILL_AT=${KILL_AT:-10}
RESTART_AT=${RESTART_AT:-20}
RETRY_SECS=${RETRY_SECS:-2}
TIMEOUT_MS=${TIMEOUT_MS:-5000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release

SCRIPT=fault-ldap
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"
# The FIFOs that keep the fixtures alive are closed before the processes are stopped.
before_cleanup() { exec 3>&- 4>&-; }

case "$FAULT" in kill | hang) ;; *) die "FAULT must be kill or hang" ;; esac
[ "$KILL_AT" -lt "$RESTART_AT" ] && [ $((RESTART_AT + RETRY_SECS + 3)) -lt "$DURATION" ] ||
    die "need KILL_AT < RESTART_AT and RESTART_AT + RETRY_SECS + 3 < DURATION"
need_commands slapd:slapd ldapwhoami:ldap-utils openssl:openssl jq:jq ss:iproute2
if [ "${BUILD:-1}" = 1 ]; then
    say "building the release binaries in $TARGET_DIR"
    cargo build --release -q -p tollgate-actors --bin tollgate \
        -p tollgate-loadtest --bin tollgate-loadtest -p tollgate-tests --bin slapd-fixture
fi
for b in tollgate tollgate-loadtest slapd-fixture; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run with BUILD=1)"
done
CLK_TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }

# --- Two directory servers with the same tree ---------------------------------------------
say "starting two slapd with $USERS load users each"
start_slapd_fixture primary "$USERS" 3
start_slapd_fixture secondary "$USERS" 4
# Each fixture made its own CA; one bundle trusts both.
cat "$(fixture_fact primary ca_file)" "$(fixture_fact secondary ca_file)" >"$tmp/ca.pem"

# --- Tollgate ------------------------------------------------------------------------------
tg_port=$(free_port)
tg="$tmp/tollgate"
mkdir -p "$tg"
cat >"$tg/tollgate.toml" <<TOML
data_dir = "$tg/data"

[radius]
listen = ["127.0.0.1:$tg_port"]

[lockout]
threshold = 0

[log]
# The directory's own messages (marked dead, answers again) and warnings of everything else.
level = "warn,tollgate_actors::ldap=info"

[[ldap]]
domain = "example.com"
default = true
servers = ["$(fixture_fact primary ldaps_url)", "$(fixture_fact secondary ldaps_url)"]
ca_file = "$tmp/ca.pem"
bind_dn = "$(fixture_fact primary service_dn)"
bind_password = "$(fixture_fact primary service_password)"
base_dn = "$(fixture_fact primary base_dn)"
others = "password-only"
retry_secs = $RETRY_SECS
operation_timeout_ms = $OP_TIMEOUT_MS
TOML
harness_directory_users "$tmp/lt" "$USERS" "$(fixture_fact primary load_password)"
"$BIN/tollgate" --config "$tg/tollgate.toml" init >/dev/null
"$BIN/tollgate" --config "$tg/tollgate.toml" client add loadtest --address 127.0.0.0/8 \
    --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null
"$BIN/tollgate" --config "$tg/tollgate.toml" serve >"$tmp/tollgate.log" 2>&1 3>&- 4>&- &
tg_pid=$!
pids+=("$tg_pid")

harness() {
    timeout $((DURATION + 60)) "$BIN/tollgate-loadtest" run --server "127.0.0.1:$tg_port" \
        --secret-stdin --dir "$tmp/lt" --quiet --scenario pap --timeout-ms "$TIMEOUT_MS" \
        "$@" <"$tmp/lt/secret" 3>&- 4>&-
}
for _ in $(seq 1 100); do
    if harness --concurrency 1 --duration 1 --max-requests 1 --json "$tmp/probe.json" >/dev/null 2>&1 &&
        [ "$(jq .counts.accepts "$tmp/probe.json")" = 1 ]; then
        break
    fi
    kill -0 "$tg_pid" 2>/dev/null || { cat "$tmp/tollgate.log" >&2; die "Tollgate did not start"; }
    sleep 0.2
done
[ "$(jq .counts.accepts "$tmp/probe.json" 2>/dev/null)" = 1 ] ||
    { cat "$tmp/tollgate.log" >&2; die "Tollgate does not accept directory logins"; }
say "warming up (connections open, slapd caches warm)"
harness --concurrency 16 --duration 3 >/dev/null

# --- The run -------------------------------------------------------------------------------
# CPU ticks of both slapd at each phase boundary: start, kill, restart + probe, end.
ticks() { cpu_ticks "$(fixture_fact "$1" pid)" 2>/dev/null || echo 0; }
if [ "$FAULT" = kill ]; then
    say "running $DURATION s at $RATE logins/s; primary SIGKILLed at ${KILL_AT}s, restarted at ${RESTART_AT}s"
else
    say "running $DURATION s at $RATE logins/s; primary frozen at ${KILL_AT}s, thawed at ${RESTART_AT}s"
fi
t_start=$(now)
harness --rate "$RATE" --duration "$DURATION" --json "$tmp/run.json" >/dev/null 2>"$tmp/harness.err" &
h_pid=$!
p0=$(ticks primary) s0=$(ticks secondary)
sleep "$KILL_AT"
p1=$(ticks primary) s1=$(ticks secondary)
t_kill=$(now)
if [ "$FAULT" = kill ]; then
    echo kill >&3
    fixture_wait primary killed 1
else
    kill -STOP "$(fixture_fact primary pid)"
fi
sleep $((RESTART_AT - KILL_AT))
s2=$(ticks secondary)
t_restart=$(now)
if [ "$FAULT" = kill ]; then
    echo restart >&3
    fixture_wait primary restarted 1
else
    kill -CONT "$(fixture_fact primary pid)"
fi
# Back in use once Tollgate's probe finds it (at most RETRY_SECS later); measured from then.
sleep $((RETRY_SECS + 1))
p3=$(ticks primary) s3=$(ticks secondary) t3=$(now)
wait "$h_pid" || true
p4=$(ticks primary) s4=$(ticks secondary)
t_end=$(now)
[ -s "$tmp/run.json" ] || { cat "$tmp/harness.err" >&2; die "the harness wrote no report"; }

# --- What happened -------------------------------------------------------------------------
# Time of a Tollgate log line (its first field is an RFC 3339 timestamp) in Unix seconds.
log_time() {
    local line
    line=$(grep -m1 "$1" "$tmp/tollgate.log" || true)
    [ -n "$line" ] || { echo ""; return; }
    date -d "$(sed 's/\x1b\[[0-9;]*m//g' <<<"$line" | awk '{ print $1 }')" +%s.%N
}
dead_at=$(log_time "marked dead")
alive_at=$(log_time "answers again")
secs() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "never"; else printf "%.3f s", b - a }'; }
logins_in() { awk -v a="$1" -v b="$2" -v r="$RATE" 'BEGIN { print (b - a) * r }'; }
cpu_per_login() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }'; }
kill_rel=$(awk -v a="$t_start" -v b="$t_kill" 'BEGIN { print b - a }')
# The slowest reply of the seconds that end within 2 s after the fault (the operation
# timeout more when frozen): the logins in flight when the primary died, and the first after.
window=$([ "$FAULT" = kill ] && echo 2 || echo $((OP_TIMEOUT_MS / 1000 + 2)))
around_kill=$(jq --argjson k "$kill_rel" --argjson w "$window" '[.timeline[] | select(.at_secs > $k and .at_secs <= $k + $w) | .max_us] | max // 0' "$tmp/run.json")

printf '\nslapd %s, two servers over LDAPS, %s users; %s logins/s for %s s (PAP, search + bind per login); fault: %s\n\n' \
    "$(slapd -VV 2>&1 | sed -n 's/.*slapd \([0-9.]*\).*/\1/p' | head -n1)" "$USERS" "$RATE" "$DURATION" "$FAULT"
jq -r '"sent \(.counts.sent), accepted \(.counts.accepts), refused \(.counts.rejects), timeouts (left hanging) \(.counts.timeouts)",
       "latency over the run: p50 \(.latency_us.p50) µs, p99 \(.latency_us.p99) µs, max \(.latency_us.max) µs"' "$tmp/run.json"
printf 'slowest reply in the %s s after the fault: %s µs\n' "$window" "$around_kill"
printf 'fault -> Tollgate marks the primary dead: %s\n' "$(secs "$t_kill" "$dead_at")"
printf 'restart -> Tollgate finds the primary answering: %s (probe every %s s)\n\n' "$(secs "$t_restart" "$alive_at")" "$RETRY_SECS"
printf '%-28s %16s %18s\n' phase primary_cpu_us/l secondary_cpu_us/l
n1=$(logins_in "$t_start" "$t_kill") n2=$(logins_in "$t_kill" "$t_restart") n3=$(logins_in "$t3" "$t_end")
printf '%-28s %16s %18s\n' "before the kill" "$(cpu_per_login $((p1 - p0)) "$n1")" "$(cpu_per_login $((s1 - s0)) "$n1")"
printf '%-28s %16s %18s\n' "primary dead" "-" "$(cpu_per_login $((s2 - s1)) "$n2")"
printf '%-28s %16s %18s\n' "primary back (after probe)" "$(cpu_per_login $((p4 - p3)) "$n3")" "$(cpu_per_login $((s4 - s3)) "$n3")"

fail=0
if [ "$FAULT" = kill ]; then
    [ "$(jq '.counts.timeouts + .counts.failures + .counts.bad_replies' "$tmp/run.json")" = 0 ] ||
        { say "FAIL: logins failed or were left hanging"; fail=1; }
    [ "$around_kill" -lt 1000000 ] || { say "FAIL: a login took 1 s or more across the kill"; fail=1; }
else
    [ "$(jq '.counts.timeouts + .counts.bad_replies' "$tmp/run.json")" = 0 ] ||
        { say "FAIL: logins were left hanging"; fail=1; }
    [ "$around_kill" -lt $(((OP_TIMEOUT_MS + 1000) * 1000)) ] ||
        { say "FAIL: a login took longer than the operation timeout and a second"; fail=1; }
fi
[ "$((p4 - p3))" -gt "$((s4 - s3))" ] || { say "FAIL: the traffic did not go back to the primary"; fail=1; }
[ -n "$alive_at" ] || { say "FAIL: Tollgate never found the primary answering again"; fail=1; }
exit "$fail"
