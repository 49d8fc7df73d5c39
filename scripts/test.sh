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
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing Debian packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests run the `tollgate` binary; build it before they start.
cargo build --workspace --bins
cargo test --workspace
