# Shell helpers shared by the load scripts of this directory (sourced, not run).
#
# The sourcing script sets SCRIPT (its name, for messages) first. It gets: say/die, a
# temporary directory in $tmp that is removed on every exit (KEEP=1 keeps it) together with
# the processes whose pids it adds to the `pids` array (a function `before_cleanup`, if the
# script defines one, runs first), need_commands, need_server_and_harness, free_port,
# cpu_ticks and median.

say() { printf '%s\n' "$*" >&2; }
die() { say "$SCRIPT: $*"; exit 1; }

tmp=$(mktemp -d "/tmp/$SCRIPT.XXXXXX")
pids=()
cleanup() {
    if declare -F before_cleanup >/dev/null; then before_cleanup; fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# Installs the Debian packages of the commands that are missing; arguments are
# `command:package` pairs.
need_commands() {
    local pair packages=() sudo=""
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || packages+=("${pair#*:}")
    done
    [ ${#packages[@]} -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || sudo=sudo
    say "installing Debian packages: ${packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
}

# Builds the release binaries of $TOLLGATE_BIN and $LOADTEST_BIN if missing, and checks
# that $SERVER_CORE and $HARNESS_CORE are cores of this machine.
need_server_and_harness() {
    if [ ! -x "$TOLLGATE_BIN" ]; then
        say "building $TOLLGATE_BIN"
        cargo build --release -p tollgate-actors --bin tollgate
    fi
    if [ ! -x "$LOADTEST_BIN" ]; then
        say "building $LOADTEST_BIN"
        cargo build --release -p tollgate-loadtest
    fi
    local cores
    cores=$(nproc)
    [ "$SERVER_CORE" -lt "$cores" ] && [ "$HARNESS_CORE" -lt "$cores" ] ||
        die "SERVER_CORE and HARNESS_CORE must be below the $cores cores of this machine"
}

# A port on loopback that nobody listens on right now, over UDP or TCP.
free_port() {
    local p
    for p in $(shuf -i 20000-60000 -n 100); do
        if ! ss -Hltun "sport = :$p" | grep -q .; then echo "$p"; return; fi
    done
    die "no free port found"
}

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat; the
# command name in field 2 is cut off first in case it contains spaces).
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat") || die "process $1 is gone"
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

# The median of the numbers on standard input, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
