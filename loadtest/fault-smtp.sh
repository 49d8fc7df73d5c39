#!/usr/bin/env bash
# Fault under load: the mail server is down for DOWN_SECS while users keep asking for
# real-time e-mail codes.
#
# tests/src/bin/smtp-outage.rs does the work: a real SMTP server (Debian's python3-aiosmtpd,
# keeping every message), a Tollgate whose e-mail gateway it is, USERS users with real-time
# e-mail codes, and RATE password logins per second (each answered Access-Challenge, the
# code written to the durable outbox): UP_SECS with the mail server up, DOWN_SECS after it
# is SIGKILLed, UP_SECS after it is started again on the same port; then it waits for the
# outbox to empty. It prints per phase how many logins were challenged and how many were
# told their code is delayed, and the mail server's count: codes requested, received, lost,
# received twice, and how long after the restart the codes that waited had all arrived.
# It fails (exit 1) when a code was lost or sent twice, or a login was not challenged.
#
# Knobs (environment): USERS (200), RATE (20), UP_SECS (20), DOWN_SECS (120), BUILD (1).
# Everything runs on loopback and stops by itself within about DOWN_SECS + 2 x UP_SECS + 2
# minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
USERS=${USERS:-200}
RATE=${RATE:-20}
UP_SECS=${UP_SECS:-20}
DOWN_SECS=${DOWN_SECS:-120}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$TARGET_DIR/release

SCRIPT=fault-smtp
# shellcheck source=loadtest/script-common.sh
source "loadtest/script-common.sh"

/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need_commands __aiosmtpd__:python3-aiosmtpd
if [ "${BUILD:-1}" = 1 ]; then
    say "building the release binaries in $TARGET_DIR"
    cargo build --release -q -p tollgate-actors --bin tollgate -p tollgate-tests --bin smtp-outage
fi
for b in tollgate smtp-outage; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run with BUILD=1)"
done
timeout $((DOWN_SECS + 2 * UP_SECS + 300)) "$BIN/smtp-outage" "$USERS" "$RATE" "$UP_SECS" "$DOWN_SECS"
