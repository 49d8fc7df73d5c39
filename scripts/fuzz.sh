#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (every parser of untrusted input), each on a copy of
# its committed seed corpus, and prints a table of executions, corpus size and findings.
#
#   bash scripts/fuzz.sh                 # each target for 10 seconds (the test suite's smoke run)
#   SECONDS_PER_TARGET=600 bash scripts/fuzz.sh decode config
#   RUNS=10000000 bash scripts/fuzz.sh decode     # a fixed number of executions instead
#
# It installs cargo-fuzz with `cargo install --locked` when missing and builds on the stable
# toolchain (RUSTC_BOOTSTRAP=1 lets it use the nightly-only sanitizer flags). A crash fails
# the script and leaves the input in fuzz/artifacts/<target>/: turn it into a regression
# test before fixing it. The committed corpus is never written to; KEEP_CORPUS=DIR keeps
# what the runs found.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-10}
RUNS=${RUNS:-}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# One build of every target (optimised, with debug assertions and the address sanitizer).
cargo fuzz build -O

work=$(mktemp -d /tmp/tollgate-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -n "$RUNS" ]; then
    limit=(-runs="$RUNS")
    what="$RUNS executions"
else
    limit=(-max_total_time="$SECONDS_PER_TARGET")
    what="$SECONDS_PER_TARGET s"
fi

printf '%-15s %14s %10s %8s %9s\n' target executions exec/s corpus result
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    cp -a "corpus/$t/." "$work/$t/" 2>/dev/null || true
    log="$work/$t.log"
    result=ok
    # -rss_limit_mb keeps a runaway allocation a finding instead of a machine in trouble.
    if ! cargo fuzz run -O "$t" "$work/$t" -- "${limit[@]}" -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=CRASH
        failed=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
    size=$(find "$work/$t" -type f | wc -l)
    printf '%-15s %14s %10s %8s %9s\n' "$t" "${execs:-?}" "${rate:-?}" "$size" "$result"
    if [ "$result" != ok ]; then
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -n 20 >&2
    fi
    if [ -n "${KEEP_CORPUS:-}" ]; then
        mkdir -p "$KEEP_CORPUS/$t"
        cp -a "$work/$t/." "$KEEP_CORPUS/$t/"
    fi
done
echo "($what per target)"
exit "$failed"
