#!/usr/bin/env bash
# Throughput and peak-memory benchmark of trafficscope, side by side with
# tcpdump, tshark, ndpiReader and nfstream on the same capture in the same run.
#
#   bench/run.sh
#
# Environment:
#   BENCH_PACKETS     packets in the main capture (default 2000000)
#   BENCH_DIR         where captures, logs and the nfstream venv go
#                     (default /work/bench-data; never inside the repository)
#   BENCH_RUNS        runs per measurement, the one with least CPU time is kept (default 2)
#   BENCH_MEM_FACTORS sizes (× BENCH_PACKETS) of the extra captures on which
#                     `stats` and `flows` are rerun to show peak memory does not
#                     grow with the file (default "0.5 4"; "" to skip)
#   BENCH_PEERS       peers to run (default "tcpdump tshark ndpiReader nfstream")
#   CARGO_TARGET_DIR  honoured; default <repo>/target
#
# The capture is built by `cargo run --release -p trafficscope --example
# make_bench_capture` from the real captures in shared/data/pcap-apps (copies
# with shifted timestamps and addresses). Wall time is measured by the shell,
# CPU time (user + sys, children included) and peak RSS by `/usr/bin/time -v`.
# On a shared machine wall time depends on the other load; CPU time does not
# (much), so throughput is given both ways.
set -euo pipefail

BENCH_PACKETS="${BENCH_PACKETS:-2000000}"
BENCH_RUNS="${BENCH_RUNS:-2}"
BENCH_MEM_FACTORS="${BENCH_MEM_FACTORS-0.5 4}"
BENCH_PEERS="${BENCH_PEERS:-tcpdump tshark ndpiReader nfstream}"
[[ "$BENCH_PACKETS" =~ ^[0-9]+$ && "$BENCH_PACKETS" -gt 0 ]] || { echo "bench: BENCH_PACKETS must be a positive integer" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools -------------------------------------------------------------------
SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() { # packages...
    command -v apt-get >/dev/null || return 1
    if [[ $APT_UPDATED -eq 0 ]]; then
        $SUDO apt-get update -qq >"$LOG/apt-update.log" 2>&1 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >"$LOG/apt-install-$1.log" 2>&1
}
have_peer() { [[ " $BENCH_PEERS " == *" $1 "* ]]; }

for pair in tcpdump:tcpdump tshark:tshark; do
    cmd="${pair%%:*}" pkg="${pair##*:}"
    if have_peer "$cmd" && ! command -v "$cmd" >/dev/null; then
        say "installing $pkg"
        apt_install "$pkg" || say "could not install $pkg (see $LOG/apt-install-$pkg.log)"
    fi
done
NDPI_WHY=""
NOT_IN_REGISTRIES="not available from this machine's registries"
if have_peer ndpiReader && ! command -v ndpiReader >/dev/null; then
    if command -v apt-cache >/dev/null && apt-cache show libndpi-bin >/dev/null 2>&1; then
        say "installing libndpi-bin (ndpiReader)"
        apt_install libndpi-bin || NDPI_WHY="apt-get install libndpi-bin failed (see $LOG/apt-install-libndpi-bin.log)"
    else
        NDPI_WHY="$NOT_IN_REGISTRIES"
    fi
fi
NFS_PY="$BENCH_DIR/venv-nfstream/bin/python"
NFS_WHY=""
if have_peer nfstream && ! "$NFS_PY" -c 'import nfstream' >/dev/null 2>&1; then
    say "installing nfstream into $BENCH_DIR/venv-nfstream"
    if ! python3 -m venv "$BENCH_DIR/venv-nfstream" >"$LOG/nfstream-venv.log" 2>&1; then
        NFS_WHY="python3 -m venv failed: $(tail -n 1 "$LOG/nfstream-venv.log")"
    elif ! "$BENCH_DIR/venv-nfstream/bin/pip" install -q nfstream >"$LOG/nfstream-pip.log" 2>&1; then
        NFS_WHY="pip install nfstream failed: $(tail -n 1 "$LOG/nfstream-pip.log")"
    elif ! "$NFS_PY" -c 'import nfstream' >"$LOG/nfstream-import.log" 2>&1; then
        NFS_WHY="import nfstream failed (libpcap missing?): $(tail -n 1 "$LOG/nfstream-import.log")"
    fi
fi

# --- build -------------------------------------------------------------------
say "building trafficscope (release) in $CARGO_TARGET_DIR"
(cd "$REPO" && cargo build --release -q -p trafficscope --bin trafficscope \
    --example make_bench_capture && cargo build --release -q -p flow --example decode_throughput)
BIN="$CARGO_TARGET_DIR/release/trafficscope"
EX="$CARGO_TARGET_DIR/release/examples"

capture_for() { # packets -> path, built if missing
    local n="$1" f="$BENCH_DIR/bench-$1.pcap"
    if [[ ! -s "$f" ]]; then
        say "building $f ($n packets)"
        "$EX/make_bench_capture" "$f" --packets "$n" 2>"$LOG/make-$n.log" || { cat "$LOG/make-$n.log" >&2; die "building $f failed"; }
        tail -n 1 "$LOG/make-$n.log" >&2
    fi
    printf '%s\n' "$f"
}
F="$(capture_for "$BENCH_PACKETS")"
FSIZE=$(stat -c %s "$F")

# --- measuring ---------------------------------------------------------------
ROWS=()
NOTES=()
LAST_BEST=""
# measure LABEL PACKETS BYTES FLOWS_FN -- CMD...   (stdout/stderr kept in $LOG)
measure() {
    local label="$1" packets="$2" bytes="$3" flows_fn="$4"
    shift 5
    local slug best_cpu="" best_wall="" best_rss="" best_flows="" i rc
    slug="$(printf '%s' "$label" | tr -c 'A-Za-z0-9._-' '_')"
    LAST_BEST="$LOG/$slug.best.out"
    rm -f "$LAST_BEST"
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        say "run $i/$BENCH_RUNS: $label"
        local t0 t1 wall user sys rss cpu
        t0=$EPOCHREALTIME
        rc=0
        local out="$LOG/$slug.out"
        # Per-packet text output (tcpdump) goes to /dev/null, as in the issue.
        if [[ "$flows_fn" == flows_discard ]]; then out=/dev/null; : >"$LOG/$slug.out"; fi
        /usr/bin/time -v -o "$LOG/$slug.time" "$@" >"$out" 2>"$LOG/$slug.err" || rc=$?
        t1=$EPOCHREALTIME
        if [[ $rc -ne 0 ]]; then
            say "$label failed (exit $rc): $(tail -n 2 "$LOG/$slug.err" | tr '\n' ' ')"
            ROWS+=("| $label | failed (exit $rc) | | | | | | | |")
            return 0
        fi
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        user=$(awk -F': ' '/User time \(seconds\)/ { print $2 }' "$LOG/$slug.time")
        sys=$(awk -F': ' '/System time \(seconds\)/ { print $2 }' "$LOG/$slug.time")
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$LOG/$slug.time")
        cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
        if [[ -z "$best_cpu" ]] || awk -v a="$cpu" -v b="$best_cpu" 'BEGIN { exit !(a < b) }'; then
            best_cpu=$cpu best_wall=$wall best_rss=$rss
            best_flows=$($flows_fn "$LOG/$slug")
            cp "$LOG/$slug.out" "$LOG/$slug.best.out"
            cp "$LOG/$slug.err" "$LOG/$slug.best.err"
        fi
    done
    ROWS+=("$(awk -v l="$label" -v n="$packets" -v b="$bytes" -v w="$best_wall" -v c="$best_cpu" \
        -v r="$best_rss" -v f="$best_flows" 'BEGIN {
            cpu = (c > 0) ? c : 0.005
            printf "| %s | %.2f M | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %s |",
                l, n / 1e6, w, c, n / w / 1e6, n / cpu / 1e6, b / cpu / 1e6, r / 1024, f }')")
}

# Flow counts from each tool's output ($1 = log prefix).
flows_none() { printf -- '-'; }
flows_discard() { printf -- '-'; }
flows_decode() { grep -o 'flows=[0-9]*' "$1.out" | head -n 1 | cut -d= -f2; }
flows_stats() { awk '/^Flows:/ { print $2; exit }' "$1.out"; }
flows_flows() { grep -o '[0-9]* flows' "$1.err" | head -n 1 | cut -d' ' -f1; }
flows_tshark() { grep -c '<->' "$1.out" || true; }
flows_ndpi() { awk -F: '/Unique flows/ { gsub(/ /, "", $2); print $2; exit }' "$1.out"; }
flows_nfstream() { grep -o 'flows=[0-9]*' "$1.out" | head -n 1 | cut -d= -f2; }

N="$BENCH_PACKETS"
inprocess_note() { # in-process figures of decode_throughput's best run
    [[ -s "$LAST_BEST" ]] || return 0
    NOTES+=("decode_throughput --mode $1, in-process: $(grep -o 'seconds=.*cpu_mb_per_s=[0-9]*' "$LAST_BEST")")
}
measure "trafficscope read+decode (example decode_throughput)" "$N" "$FSIZE" flows_none -- \
    "$EX/decode_throughput" "$F" --mode decode
inprocess_note decode
measure "trafficscope read+decode+flows (example decode_throughput)" "$N" "$FSIZE" flows_decode -- \
    "$EX/decode_throughput" "$F" --mode flows
inprocess_note flows
measure "trafficscope stats -r F" "$N" "$FSIZE" flows_stats -- "$BIN" stats -r "$F"
measure "trafficscope flows -r F -o /dev/null" "$N" "$FSIZE" flows_flows -- "$BIN" flows -r "$F" -o /dev/null
if have_peer tcpdump; then
    if command -v tcpdump >/dev/null; then
        measure "tcpdump -nr F >/dev/null" "$N" "$FSIZE" flows_discard -- tcpdump -nr "$F"
    else NOTES+=("tcpdump: not available"); fi
fi
if have_peer tshark; then
    if command -v tshark >/dev/null; then
        measure "tshark -q -z conv,tcp -z conv,udp" "$N" "$FSIZE" flows_tshark -- \
            tshark -q -r "$F" -z conv,tcp -z conv,udp
    else NOTES+=("tshark: not available"); fi
fi
if have_peer ndpiReader; then
    if command -v ndpiReader >/dev/null; then
        measure "ndpiReader -i F -v 0" "$N" "$FSIZE" flows_ndpi -- ndpiReader -i "$F" -v 0
        [[ -s "$LAST_BEST" ]] && NOTES+=("ndpiReader's own figures (best run): $(grep -E 'Packet Processing Time|nDPI throughput' "$LAST_BEST" | sed 's/^[[:space:]]*//' | tr -s ' \t' ' ' | paste -sd '|' - | sed 's/|/; /g')")
    else
        NOTES+=("ndpiReader: ${NDPI_WHY:-$NOT_IN_REGISTRIES}")
    fi
fi
if have_peer nfstream; then
    if [[ -z "$NFS_WHY" ]]; then
        measure "nfstream (statistical_analysis, n_meters=1)" "$N" "$FSIZE" flows_nfstream -- \
            "$NFS_PY" "$REPO/bench/nfstream_flows.py" "$F" 1
    else
        NOTES+=("nfstream: $NFS_WHY")
    fi
fi

# Peak memory against file size.
for factor in $BENCH_MEM_FACTORS; do
    n=$(awk -v n="$N" -v f="$factor" 'BEGIN { printf "%d", n * f }')
    [[ "$n" -gt 0 && "$n" -ne "$N" ]] || continue
    G="$(capture_for "$n")"
    gsize=$(stat -c %s "$G")
    measure "trafficscope stats (${factor}x file)" "$n" "$gsize" flows_stats -- "$BIN" stats -r "$G"
    measure "trafficscope flows -o /dev/null (${factor}x file)" "$n" "$gsize" flows_flows -- "$BIN" flows -r "$G" -o /dev/null
done

# --- report ------------------------------------------------------------------
echo
echo "Capture: $F — $N packets, $(awk -v b="$FSIZE" 'BEGIN { printf "%.2f", b / 1e9 }') GB; best of $BENCH_RUNS runs (least CPU time)."
echo "Machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')."
echo
echo "| tool | packets | wall s | CPU s | Mpkt/s (wall) | Mpkt/s (CPU) | MB/s (CPU) | peak RSS MB | flows |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
if [[ ${#NOTES[@]} -gt 0 ]]; then
    echo
    printf -- '- %s\n' "${NOTES[@]}"
fi
echo
echo "MB = 10^6 bytes of capture file. CPU s = user + sys (children included). Logs: $LOG"
