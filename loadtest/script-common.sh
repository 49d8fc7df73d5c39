# Shell helpers shared by the load scripts of this directory (sourced, not run).
#
# The sourcing script sets SCRIPT (its name, for messages) first. It gets: say/die, a
# temporary directory in $tmp that is removed on every exit (KEEP=1 keeps it) together with
# the processes whose pids it adds to the `pids` array (a function `before_cleanup`, if the
# script defines one, runs first), need_commands, need_server_and_harness, free_port,
# cpu_ticks, wait_listening, rss_mb, median, metric_sum, and for scripts with a directory (BIN set to the release binaries)
# start_slapd_fixture, fixture_fact, fixture_wait and harness_directory_users.

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

# Waits until the server PID has written "listening on" to LOG, SECONDS at most (10 by
# default); when it exits first or the time runs out, prints its log and dies.
# Usage: wait_listening NAME PID LOG [SECONDS]
wait_listening() {
    local name=$1 pid=$2 log=$3 tries=$((${4:-10} * 10))
    for _ in $(seq 1 "$tries"); do
        grep -q "listening on" "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    die "$name did not start"
}

# The resident set of process PID in MB, one decimal; FIELD of /proc/PID/status (VmRSS by
# default, VmHWM for the peak). Usage: rss_mb PID [FIELD]
rss_mb() { awk -v f="${2:-VmRSS}:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# The sum of every series whose line starts with PATTERN on the metrics page of a server
# whose [metrics] listen is 127.0.0.1:PORT, as a whole number. Usage: metric_sum PORT PATTERN
metric_sum() {
    curl -s "127.0.0.1:$1/metrics" |
        awk -v p="$2" '$0 ~ "^" p { s += $NF } END { printf "%d", s }'
}

# The median of the numbers on standard input, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Starts `$BIN/slapd-fixture USERS` as NAME (the test harness's slapd with USERS load users
# load00000…, password load-pass), with any command prefix in the array named by PREFIX
# (taskset, say; "" for none). Its standard input is the FIFO $tmp/NAME.in, which the
# calling shell holds open on file descriptor FD: if the script dies, even by SIGKILL, the
# fixture reads end-of-file and takes slapd down with it; `echo kill >&FD` and `echo
# restart >&FD` crash and restart slapd. Its facts are read with `fixture_fact NAME KEY`.
# Usage: start_slapd_fixture NAME USERS FD [PREFIX...]
start_slapd_fixture() {
    local name=$1 users=$2 fd=$3 pid
    shift 3
    mkfifo "$tmp/$name.in"
    "$@" "$BIN/slapd-fixture" "$users" <"$tmp/$name.in" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    eval "exec $fd>\"\$tmp/\$name.in\""
    for _ in $(seq 1 1200); do
        grep -q '^ready=1$' "$tmp/$name.out" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.err" >&2; die "slapd-fixture $name failed"; }
        sleep 0.1
    done
    die "slapd $name did not start within 120 s"
}

# The last value of KEY that fixture NAME printed (`pid` changes at each restart).
fixture_fact() { sed -n "s/^$2=//p" "$tmp/$1.out" | tail -n1; }

# Waits (at most 30 s) until fixture NAME has printed KEY=1 COUNT times.
fixture_wait() {
    local name=$1 key=$2 count=$3
    for _ in $(seq 1 300); do
        [ "$(grep -c "^$key=1$" "$tmp/$name.out")" -ge "$count" ] && return 0
        sleep 0.1
    done
    die "slapd $name did not report $key"
}

# Makes the RADIUS harness's users (in DIR) the directory's load users load00000… with the
# password PASSWORD: `setup` writes a state file of its own format and random secrets, and
# only the names and passwords change. Usage: harness_directory_users DIR USERS PASSWORD
harness_directory_users() {
    local dir=$1 users=$2 password=$3
    "$BIN/tollgate-loadtest" setup --users "$users" --dir "$dir" >/dev/null
    jq --arg pw "$password" \
        '.users |= [to_entries[] | .value.name = ("load" + ("0000" + (.key | tostring))[-5:])
                                    | .value.password = $pw | .value]' \
        "$dir/state.json" >"$dir/state.new"
    mv "$dir/state.new" "$dir/state.json"
    rm -f "$dir/seeds.csv"
    [ "$(jq -r '.users[-1].name' "$dir/state.json")" = "$(printf 'load%05d' $((users - 1)))" ] ||
        die "USERS must be at most 100000 (five-digit names)"
}
