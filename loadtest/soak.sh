#!/usr/bin/env bash
# The soak: DURATION seconds (30 minutes) of mixed traffic at half of what the server
# answers in a closed loop, watching its memory and its error counters.
#
# The server runs at its default settings (an audit line per decision in the log, which goes
# to /dev/null: half an hour of it would fill the disk) pinned to SERVER_CORE, the harness on
# HARNESS_CORE. Two user sets (USERS each, password + HOTP) are served by two
# clients: one in append mode, one in challenge mode (a password, then the code under the
# challenge's State). The script first measures the closed-loop maximum of each (16 in flight,
# 10 s): A append logins/s and C challenge logins/s (a challenge login costs the server about
# five append logins: two datagrams, a session actor). Then two open loops run side by side,
# append at A/4 requests/s and challenge at C/4 logins/s, which together are half of what the
# server answers; each a mix of good logins, wrong codes, replays, unknown users, wrong passwords, a bad
# shared secret (a Message-Authenticator that does not verify) and malformed datagrams, with
# DUPLICATES percent of the logins' datagrams sent twice at once, as a NAS retransmits.
#
# Every SAMPLE_SECS it records the server's RSS (and its anonymous and file-backed parts, and
# its CPU time in clock ticks, in rss.tsv, kept with KEEP=1); at the end it prints the RSS after the
# warm-up (WARMUP_SECS): first, last, smallest, largest, and the largest departure from the
# first (the soak passes at 10 % or less); the harnesses' verdicts; and the server's error
# counters beside what was sent to provoke them. It fails (exit 1) when the RSS moved more
# than 10 %, a harness saw a failure, a timeout or a bad reply, or the server counted a store,
# journal or audit error, a shed request or an actor restart.
#
# Knobs (environment): DURATION (1800), WARMUP_SECS (300), SAMPLE_SECS (10), USERS (500),
# DUPLICATES (5), SERVER_CORE (1), HARNESS_CORE (0), LOG_LEVEL (unset: the default),
# TOLLGATE_BIN, LOADTEST_BIN, KEEP (0).
# Not in CI: it takes DURATION plus about two minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-1800}
WARMUP_SECS=${WARMUP_SECS:-300}
SAMPLE_SECS=${SAMPLE_SECS:-10}
USERS=${USERS:-500}
DUPLICATES=${DUPLICATES:-5}
LOG_LEVEL=${LOG_LEVEL:-}
SERVER_CORE=${SERVER_CORE:-1}
HARNESS_CORE=${HARNESS_CORE:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
TOLLGATE_BIN=${TOLLGATE_BIN:-$TARGET_DIR/release/tollgate}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET_DIR/release/tollgate-loadtest}
MIX=accept=18000,reject=800,replay=800,bad-secret=200,malformed=200,unknown-user=1,bad-password=1

SCRIPT=soak
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

[ "$WARMUP_SECS" -lt "$DURATION" ] || die "WARMUP_SECS must be below DURATION"
need_commands jq:jq taskset:util-linux ss:iproute2 curl:curl
need_server_and_harness

say "setting up 2 x $USERS users (password + HOTP): Argon2id hashing takes a while"
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/append" --passwords --prefix ap >/dev/null
"$LOADTEST_BIN" setup --users "$USERS" --dir "$tmp/challenge" --passwords --prefix ch >/dev/null
port=$(free_port)
metrics=$(free_port)
cat >"$tmp/tollgate.toml" <<TOML
data_dir = "$tmp/data"

[radius]
listen = ["127.0.0.1:$port"]

[metrics]
listen = "127.0.0.1:$metrics"
TOML
# LOG_LEVEL (not set: the default, an audit line per decision) lets a run show what the
# log costs.
if [ -n "$LOG_LEVEL" ]; then printf '\n[log]\nlevel = "%s"\n' "$LOG_LEVEL" >>"$tmp/tollgate.toml"; fi
tollgate() { "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" "$@"; }
tollgate init >/dev/null
for set in append challenge; do
    tollgate user import "$tmp/$set/users.csv" >/dev/null
    tollgate token import "$tmp/$set/seeds.csv" >/dev/null
done
tollgate client add soak-append --address 127.0.0.0/16 --secret-stdin --mode append <"$tmp/append/secret" >/dev/null
tollgate client add soak-challenge --address 127.1.0.0/16 --secret-stdin --mode challenge <"$tmp/challenge/secret" >/dev/null
# The log (an audit line per decision: gigabytes in half an hour) is formatted and written
# as at default settings, to /dev/null; the metrics are the record.
taskset -c "$SERVER_CORE" "$TOLLGATE_BIN" --config "$tmp/tollgate.toml" serve 2>/dev/null >"$tmp/out" &
server=$!
pids+=("$server")
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" "$tmp/out" || die "the server did not start"

harness() {
    local set=$1
    shift
    timeout $((DURATION + 300)) taskset -c "$HARNESS_CORE" "$LOADTEST_BIN" run \
        --server "127.0.0.1:$port" --secret-stdin --dir "$tmp/$set" --quiet "$@" \
        <"$tmp/$set/secret" 2>>"$tmp/harness-$set.err"
}
say "warm-up: every user logs in once"
harness append --scenario append --concurrency 16 --duration 1 --max-requests 1 --warmup >/dev/null || true
harness challenge --scenario challenge --source-base 127.1.0.1 --concurrency 16 --duration 1 \
    --max-requests 1 --warmup >/dev/null || true
say "measuring the closed-loop maxima (16 in flight, 10 s each)"
harness append --scenario append --concurrency 16 --duration 10 --json "$tmp/max-append.json" >/dev/null || true
harness challenge --scenario challenge --source-base 127.1.0.1 --concurrency 16 --duration 10 \
    --json "$tmp/max-challenge.json" >/dev/null || true
max_append=$(jq '.throughput.ok_per_sec' "$tmp/max-append.json")
max_challenge=$(jq '.throughput.ok_per_sec' "$tmp/max-challenge.json")
rate_append=$(awk -v m="$max_append" 'BEGIN { printf "%d", m / 4 }')
rate_challenge=$(awk -v m="$max_challenge" 'BEGIN { printf "%d", m / 4 }')
[ "$rate_append" -gt 0 ] && [ "$rate_challenge" -gt 0 ] ||
    die "the server answered almost nothing ($max_append and $max_challenge logins/s)"
say "maxima: $(printf '%.0f' "$max_append") append, $(printf '%.0f' "$max_challenge") challenge logins/s; soaking $DURATION s at $rate_append + $rate_challenge"

metric() { metric_sum "$metrics" "$1"; }
# RSS, then its anonymous and file-backed parts (the journal's mapped segments, SQLite's
# files), in KiB.
rss_kb() { awk '/^(VmRSS|RssAnon|RssFile):/ { printf "%s%s", sep, $2; sep = "\t" }' "/proc/$server/status"; }
# The server's CPU time so far, in clock ticks (user + system).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
ticks_per_sec=$(getconf CLK_TCK)
# The kernel's UDP counters (all sockets of the machine: the server's and the harnesses'):
# a datagram dropped for want of room in a receive buffer shows here, not in the server.
udp_counters() {
    awk '/^Udp:/ { if (!seen) { for (i = 2; i <= NF; i++) name[i] = $i; seen = 1 } else {
        for (i = 2; i <= NF; i++) if (name[i] ~ /^(InErrors|RcvbufErrors|SndbufErrors)$/) printf "%s %s ", name[i], $i } }' /proc/net/snmp
}
udp_before=$(udp_counters)
before_store=$(metric tollgate_store_errors_total)
# Four sockets per simulated NAS: an answered duplicated datagram keeps its identifier a
# moment longer.
harness append --scenario mix --mix "$MIX" --duplicates "$DUPLICATES" --rate "$rate_append" \
    --sockets-per-source 4 \
    --duration "$DURATION" --json "$tmp/append.json" >/dev/null &
h1=$!
harness challenge --scenario mix --login challenge --source-base 127.1.0.1 --mix "$MIX" \
    --sockets-per-source 4 --duplicates "$DUPLICATES" --rate "$rate_challenge" --duration "$DURATION" \
    --json "$tmp/challenge.json" >/dev/null &
h2=$!
pids+=("$h1" "$h2")
start=$(date +%s)
cpu_start=$(cpu_ticks)
: >"$tmp/rss.tsv"
while kill -0 "$h1" 2>/dev/null || kill -0 "$h2" 2>/dev/null; do
    printf '%s\t%s\t%s\n' $(($(date +%s) - start)) "$(rss_kb)" "$(cpu_ticks)" >>"$tmp/rss.tsv"
    sleep "$SAMPLE_SECS"
done
wait "$h1" || true
wait "$h2" || true
printf '%s\t%s\t%s\n' $(($(date +%s) - start)) "$(rss_kb)" "$(cpu_ticks)" >>"$tmp/rss.tsv"
cpu_busy=$(awk -v a="$cpu_start" -v b="$(cpu_ticks)" -v hz="$ticks_per_sec" -v s="$start" -v e="$(date +%s)" \
    'BEGIN { printf "%.0f", (b - a) / hz / (e - s) * 100 }')
curl -s "127.0.0.1:$metrics/metrics" >"$tmp/metrics.txt"
udp_after=$(udp_counters)

# --- What it saw ---------------------------------------------------------------------------
printf '\nsoak: %s s; closed-loop maxima %.0f append and %.0f challenge logins/s; offered %s append requests/s + %s challenge logins/s, mix %s, %s %% duplicated; server on core %s (%s)\n\n' \
    "$DURATION" "$max_append" "$max_challenge" "$rate_append" "$rate_challenge" "$MIX" "$DUPLICATES" "$SERVER_CORE" "${LOG_LEVEL:+log level $LOG_LEVEL, otherwise }default settings"
awk -F'\t' -v w="$WARMUP_SECS" '
    $1 >= w { n++; if (n == 1) first = $2; last = $2; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2 }
    END {
        d = (max - first > first - min) ? max - first : first - min
        printf "RSS after %d s of warm-up (%d samples): first %.1f MB, last %.1f MB, min %.1f MB, max %.1f MB; largest departure from the first %.1f %%\n", w, n, first / 1024, last / 1024, min / 1024, max / 1024, d / first * 100
        exit (d / first > 0.10)
    }' "$tmp/rss.tsv" && rss_ok=1 || rss_ok=0
awk -F'\t' 'NR == 1 { printf "RSS at the start of the soak: %.1f MB\n", $2 / 1024 }' "$tmp/rss.tsv"
printf 'server CPU over the soak: %s %% of its core\n' "$cpu_busy"
for set in append challenge; do
    jq -r --arg set "$set" '"\($set): sent \(.counts.sent) datagrams (+\(.counts.duplicates_sent) duplicates, \(.counts.duplicate_replies) answered again, \(.counts.duplicate_mismatches) differently); ok \(.counts.ok), failures \(.counts.failures), timeouts \(.counts.timeouts), bad replies \(.counts.bad_replies), dropped as expected \(.counts.dropped_as_expected); p50 \(.latency_us.p50) µs, p99 \(.latency_us.p99) µs, p99.9 \(.latency_us.p999) µs"' "$tmp/$set.json"
done
probes=$(jq -s '[.[] | .by_kind["bad-secret"].started // 0, .by_kind.malformed.started // 0] | add' "$tmp/append.json" "$tmp/challenge.json")
printf '\nserver counters (whole run, warm-up included) beside what the harnesses sent:\n'
grep -E '^tollgate_radius_dropped_total|^tollgate_radius_duplicates_total|^tollgate_radius_rejects_total' "$tmp/metrics.txt" | sed 's/^/  /'
printf '  (bad-secret + malformed probes sent in the soak: %s)\n' "$probes"
printf '  kernel UDP counters before: %s\n  kernel UDP counters after:  %s\n' "$udp_before" "$udp_after"
bad=0
for series in tollgate_store_errors_total tollgate_journal_errors_total tollgate_audit_dropped_total \
    tollgate_shed_total tollgate_actor_restarts_total; do
    n=$(awk -v p="$series" '$0 ~ "^" p { s += $NF } END { printf "%d", s }' "$tmp/metrics.txt")
    printf '  %-32s %s\n' "$series" "$n"
    [ "$n" = 0 ] || bad=1
done

fail=0
[ "$rss_ok" = 1 ] || { say "FAIL: the RSS moved more than 10 % after the warm-up"; fail=1; }
for set in append challenge; do
    [ "$(jq '.passed' "$tmp/$set.json")" = true ] || { say "FAIL: the $set harness saw failures"; fail=1; }
done
[ "$bad" = 0 ] || { say "FAIL: the server counted errors it was not sent"; fail=1; }
[ "$before_store" = 0 ] || say "note: store errors before the soak: $before_store"
exit "$fail"
