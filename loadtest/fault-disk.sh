#!/usr/bin/env bash
# Fault under load: the data directory's disk fills up while logins run, space returns, the
# disk fills again, the server is SIGKILLed while it is full, and starts again once space
# has returned.
#
# The data directory (store, used-code journal, audit file) is a tmpfs of TMPFS_MB MiB
# mounted by this script (it needs root). USERS embedded users with a password and an HOTP
# token log in (append mode) in an open loop at RATE per second; every user has logged in
# once before (a warm-up), so each password check is answered from the credential cache.
# Phases:
#   1. full      a file takes every free byte of the disk; PHASE_SECS of logins;
#   2. space     the file is removed; PHASE_SECS of logins; the store catches up;
#   3. full      the disk is filled again; PHASE_SECS of logins; then SIGKILL, disk full;
#   4. restart   the file is removed and the server starts on the same data directory.
# Then it checks: SQLite's own integrity check of the store; every user's last accepted code
# is refused (a replay) and a fresh code is accepted (one login each), so that no counter
# went back and none jumped ahead; and it prints per phase the logins answered and what the
# server counted as failed writes (store, journal, audit).
#
# It fails (exit 1) when a login failed or timed out in phases 1–3, when the integrity check
# does not say "ok", or when a replay is accepted or a fresh code refused afterwards.
#
# Knobs (environment): USERS (300), RATE (1000), PHASE_SECS (10), TMPFS_MB (48),
# TOLLGATE_BIN, LOADTEST_BIN, KEEP (0: keep the temporary directory, unmounted).
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-300}
RATE=${RATE:-1000}
PHASE_SECS=${PHASE_SECS:-10}
TMPFS_MB=${TMPFS_MB:-48}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}

SCRIPT=fault-disk
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"
data="$tmp/data"
before_cleanup() {
    if mountpoint -q "$data"; then umount "$data" || umount -l "$data" || true; fi
}

[ "$(id -u)" = 0 ] || die "mounting the small disk (tmpfs) needs root"
need_commands jq:jq curl:curl sqlite3:sqlite3 mountpoint:util-linux
need_server_and_harness

mkdir -p "$data"
mount -t tmpfs -o "size=${TMPFS_MB}m,mode=0700" tmpfs "$data" || die "cannot mount a tmpfs on $data"
say "setting up $USERS users (password + HOTP) on a ${TMPFS_MB} MiB tmpfs"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/lt" --passwords >/dev/null
port=$(free_port)
metrics=$(free_port)
cat >"$tmp/tollgate.toml" <<TOML
data_dir = "$data"

[radius]
listen = ["127.0.0.1:$port"]

[lockout]
threshold = 0

[log]
level = "warn"

[audit]
file = "$data/audit.jsonl"

[metrics]
listen = "127.0.0.1:$metrics"
TOML
tollgate() { "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" "$@"; }
tollgate init >/dev/null
tollgate user import "$tmp/lt/users.csv" >/dev/null
tollgate token import "$tmp/lt/seeds.csv" >/dev/null
tollgate client add loadtest --address 127.0.0.0/8 --secret-stdin --mode append <"$tmp/lt/secret" >/dev/null

server=""
start_server() {
    : >"$tmp/log.$1"
    taskset -c "$SERVER_CORE" "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" serve >"$tmp/log.$1" 2>&1 &
    server=$!
    pids+=("$server")
    for _ in $(seq 1 100); do grep -q "listening on" "$tmp/log.$1" && return; sleep 0.1; done
    cat "$tmp/log.$1" >&2
    die "the server did not start"
}
harness() {
    timeout $((PHASE_SECS + 60)) taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" run \
        --server "127.0.0.1:$port" --secret-stdin --dir "$tmp/lt" --quiet "$@" \
        <"$tmp/lt/secret" 2>>"$tmp/harness.err"
}
metric() { metric_sum "$metrics" "$1"; }
fill() {
    # Big blocks first, then small ones for the last bytes; both stop at "No space left".
    dd if=/dev/zero of="$data/filler" bs=1M status=none 2>/dev/null || true
    dd if=/dev/zero of="$data/filler.tail" bs=4k status=none 2>/dev/null || true
    sync
}
free_space() { rm -f "$data/filler" "$data/filler.tail"; }
avail_kb() { df -k --output=avail "$data" | tail -n1 | tr -d ' '; }
segments() { find "$data" -maxdepth 1 -name 'used-*.journal' | wc -l; }

start_server 1
say "warm-up: every user logs in once"
harness --scenario append --concurrency 16 --duration 1 --max-requests 1 --warmup --json "$tmp/warm.json" >/dev/null || true

results="$tmp/results.tsv"
: >"$results"
phase() {
    local label=$1 s0 j0 a0 s1 j1 a1
    s0=$(metric tollgate_store_errors_total) j0=$(metric tollgate_journal_errors_total)
    a0=$(metric tollgate_audit_dropped_total)
    harness --scenario append --rate "$RATE" --duration "$PHASE_SECS" --json "$tmp/$label.json" >/dev/null || true
    [ -s "$tmp/$label.json" ] || { cat "$tmp/harness.err" >&2; die "the harness wrote no report"; }
    s1=$(metric tollgate_store_errors_total) j1=$(metric tollgate_journal_errors_total)
    a1=$(metric tollgate_audit_dropped_total)
    jq -r --arg l "$label" --arg free "$(avail_kb)" --arg seg "$(segments)" \
        --argjson s $((s1 - s0)) --argjson j $((j1 - j0)) --argjson a $((a1 - a0)) '
        [$l, .counts.sent, .counts.accepts, .counts.failures + .counts.timeouts + .counts.bad_replies,
         .latency_us.p50, .latency_us.p99, $s, $j, $a, $free, $seg] | @tsv' "$tmp/$label.json" >>"$results"
    say "  $(tail -n1 "$results" | awk -F'\t' '{ printf "%s: %d sent, %d accepted, %d failed; store errors %d, journal errors %d, audit lines dropped %d; %s KiB free, %s journal segments", $1, $2, $3, $4, $7, $8, $9, $10, $11 }')"
}

say "phase 1: the disk is full"
fill
phase 1-full
say "phase 2: space returns"
free_space
phase 2-space
say "phase 3: the disk is full again; SIGKILL at its end"
fill
phase 3-full
kill -9 "$server"
wait "$server" 2>/dev/null || true
left=$(segments)
say "phase 4: space returns; the server starts on the same data directory"
free_space
start_server 2
recovered=$(grep -c "did not stop cleanly" "$tmp/log.2" || true)
# One login per user: the last accepted code again (must be refused), then a fresh one
# (must be accepted); the harness expects exactly that of kinds replay and accept.
harness --scenario mix --mix replay=50,accept=50 --concurrency 8 --duration 20 \
    --max-requests $((USERS * 2)) --json "$tmp/after.json" >/dev/null || true
kill "$server"
wait "$server" 2>/dev/null || true
integrity=$(sqlite3 "$data/tollgate.db" 'PRAGMA integrity_check;' 2>&1 | head -n5)
audit_ok=$(python3 -c '
import json, sys
bad = 0
for line in open(sys.argv[1], "rb"):
    try: json.loads(line)
    except Exception: bad += 1
print(bad)' "$data/audit.jsonl")

printf '\ndata directory on a %s MiB tmpfs, %s users (password cached + HOTP, append), %s logins/s, %s s per phase\n\n' \
    "$TMPFS_MB" "$USERS" "$RATE" "$PHASE_SECS"
printf '%-9s %7s %9s %7s %7s %7s %13s %15s %14s %9s %9s\n' phase sent accepted failed p50_us p99_us \
    store_errors journal_errors audit_dropped free_KiB segments
awk -F'\t' '{ printf "%-9s %7d %9d %7d %7d %7d %13d %15d %14d %9s %9s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$results"
printf '\njournal segments left by the SIGKILL: %s; applied at the restart: %s\n' "$left" \
    "$([ "$recovered" -gt 0 ] && echo yes || echo no)"
jq -r '"after the restart: replays \(.by_kind.replay.started // 0) (refused as expected: \(.by_kind.replay.ok // 0)), fresh codes \(.by_kind.accept.started // 0) (accepted: \(.by_kind.accept.ok // 0)), failures \(.counts.failures), timeouts \(.counts.timeouts)"' "$tmp/after.json"
printf 'SQLite integrity_check: %s\n' "$integrity"
printf 'audit lines that are not whole JSON: %s\n' "$audit_ok"

fail=0
awk -F'\t' '$4 > 0 { bad = 1 } END { exit bad }' "$results" || { say "FAIL: logins failed while the disk was full"; fail=1; }
[ "$integrity" = ok ] || { say "FAIL: the store is not intact"; fail=1; }
[ "$(jq '.counts.failures + .counts.timeouts + .counts.bad_replies' "$tmp/after.json")" = 0 ] ||
    { say "FAIL: a counter did not survive (a replay accepted or a fresh code refused)"; fail=1; }
[ "$(jq '.by_kind.replay.started // 0' "$tmp/after.json")" -gt 0 ] || { say "FAIL: no replay was tried"; fail=1; }
exit "$fail"
