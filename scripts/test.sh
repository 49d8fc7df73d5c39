#!/usr/bin/env bash
# Runs every check and test of Tollgate. It first installs the Debian packages of the real
# peers the tests talk to (only those missing), so it works on a fresh Debian machine with
# the Rust toolchain and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v radclient >/dev/null 2>&1 || need+=(freeradius-utils)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
command -v slapd >/dev/null 2>&1 || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing Debian packages: ${need[*]}"
    # The tests start their own servers (slapd, rsyslogd, ...) on loopback ports of their
    # own; the packages' system services are not wanted. While installing, a policy-rc.d
    # that refuses every start keeps the maintainer scripts from starting them (unless the
    # machine already has a policy-rc.d, which is left alone). A system service that runs
    # anyway (slapd on 389) does not disturb the tests.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# scripts/test.sh: start no service while it installs test peers.\nexit 101\n' |
            $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        trap '$sudo rm -f "$policy"' EXIT
    fi
    $sudo apt-get update -qq
    # slapd's debconf questions are answered with their defaults (no prompt).
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    if trap -p EXIT | grep -q policy; then
        $sudo rm -f "$policy"
        trap - EXIT
    fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the `tollgate` binary; build it before they start.
cargo build --workspace --bins
# Test-only hooks (the `fault-injection` feature, turned on by the tests' dev-dependency)
# stay out of the binary a workspace build ships.
shipped="${CARGO_TARGET_DIR:-target}/debug/tollgate"
if grep -q "fault injection: client actor asked to panic" "$shipped"; then
    echo "$shipped holds the fault-injection hooks of the tests" >&2
    exit 1
fi
cargo test --workspace
# Every fuzz target for a few seconds on its committed corpus: a parser that panics on an
# input it once took fails the run.
SECONDS_PER_TARGET=${FUZZ_SECONDS:-10} bash scripts/fuzz.sh
