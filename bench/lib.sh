# Shared prelude of the benchmark scripts (sourced, not run):
#
#   REPO, CARGO_TARGET_DIR (default <repo>/target), BENCH_DIR (default
#   /work/bench-data, refused inside the repository), LOG=$BENCH_DIR/logs;
#   say / die; /usr/bin/time installed when missing;
#   build_release: trafficscope and the capture maker, release; sets BIN;
#   bench_capture PACKETS SCALE: the synthetic benchmark capture (built once
#   and kept in BENCH_DIR), its path on stdout.

REPO="$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/work/bench-data}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
say() { printf '%s\n' "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

mkdir -p "$BENCH_DIR/logs"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd -P)"
case "$BENCH_DIR/" in
    "$(cd "$REPO" && pwd -P)/"*) die "BENCH_DIR ($BENCH_DIR) is inside the repository; put generated captures elsewhere" ;;
esac
LOG="$BENCH_DIR/logs"

if [[ ! -x /usr/bin/time ]]; then
    say "installing time"
    sudo_=""
    [[ $(id -u) -eq 0 ]] || sudo_="sudo"
    { $sudo_ apt-get install -y -qq time || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq time; }; } \
        >"$LOG/apt-install-time.log" 2>&1 || die "/usr/bin/time is missing and could not be installed (see $LOG/apt-install-time.log)"
fi

build_release() {
    say "building trafficscope (release) in $CARGO_TARGET_DIR"
    (cd "$REPO" && cargo build --release -q -p trafficscope --bin trafficscope --example make_bench_capture)
    BIN="$CARGO_TARGET_DIR/release/trafficscope"
}

bench_capture() { # packets scale -> path
    local f="$BENCH_DIR/bench-$1.pcap"
    [[ "$2" == 1 ]] || f="$BENCH_DIR/bench-$1-x$2.pcap"
    if [[ ! -s "$f" ]]; then
        say "building $f"
        "$CARGO_TARGET_DIR/release/examples/make_bench_capture" "$f" --packets "$1" \
            --time-scale "$2" 2>"$LOG/make.log" || { cat "$LOG/make.log" >&2; die "building the capture failed"; }
    fi
    printf '%s\n' "$f"
}
