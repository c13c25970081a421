#!/usr/bin/env bash
# Cost of the live service against the offline path, on the benchmark
# capture, whole processes, in the same run:
#
#   bench/run_service.sh
#
#   trafficscope flows -r F -o /dev/null                 (decode + flows)
#   trafficscope classify -r F                           (+ streaming classification, windows)
#   trafficscope run -r F --speed max --no-listen        (+ bins, windows, fine series,
#                                                           sliding Hurst, store commits)
#
# Environment: BENCH_PACKETS (default 2000000), BENCH_TIME_SCALES (default
# "1 100": the benchmark capture spans 29 h of capture time, so per-second
# work — bins, Hurst estimates, their rows in the store — weighs as much as
# per-packet work; at 100 the same packets play in 17 min), BENCH_DIR (default
# /work/bench-data, never inside the repository), BENCH_RUNS (runs per
# command, the one with least CPU time is kept; default 2), CARGO_TARGET_DIR.
# CPU time is user + sys from /usr/bin/time -v; the store's share is the CPU
# time of run's store-writer thread, which run prints at the end.
set -euo pipefail

BENCH_PACKETS="${BENCH_PACKETS:-2000000}"
BENCH_RUNS="${BENCH_RUNS:-2}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_release
BENCH_TIME_SCALES="${BENCH_TIME_SCALES:-1 100}"
capture_for() { bench_capture "$BENCH_PACKETS" "$1"; }

ROWS=()
# measure LABEL CMD... : best of BENCH_RUNS by CPU; sets CPU RSS WALL ERR
measure() {
    local label="$1"; shift
    local best="" i
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        rm -rf "$BENCH_DIR/run-store"
        say "run $i/$BENCH_RUNS: $label"
        local t0=$EPOCHREALTIME
        /usr/bin/time -v -o "$LOG/time.txt" "$@" >/dev/null 2>"$LOG/err.txt" || { cat "$LOG/err.txt" >&2; die "$label failed"; }
        local t1=$EPOCHREALTIME
        local user sys rss cpu wall
        user=$(awk -F': ' '/User time/ {print $2}' "$LOG/time.txt")
        sys=$(awk -F': ' '/System time/ {print $2}' "$LOG/time.txt")
        rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$LOG/time.txt")
        cpu=$(echo "$user + $sys" | bc -l)
        wall=$(echo "$t1 - $t0" | bc -l)
        if [[ -z "$best" ]] || (( $(echo "$cpu < $best" | bc -l) )); then
            best=$cpu; CPU=$cpu; RSS=$rss; WALL=$wall
            cp "$LOG/err.txt" "$LOG/best-err.txt"
        fi
    done
    ERR="$LOG/best-err.txt"
    ROWS+=("$(printf '| %s | %.2f | %.2f | %.0f | %.2f |' "$label" "$CPU" "$(echo "$BENCH_PACKETS / $CPU / 1000000" | bc -l)" "$(echo "$RSS / 1024" | bc -l)" "$WALL")")
}

command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1 || die "bc is missing"
for SCALE in $BENCH_TIME_SCALES; do
ROWS=()
F="$(capture_for "$SCALE")"
measure "\`flows -o /dev/null\`" "$BIN" flows -r "$F" -o /dev/null
FLOWS_CPU=$CPU
measure "\`classify\`" "$BIN" classify -r "$F"
CLASSIFY_CPU=$CPU
measure "\`run --speed max --no-listen\`" "$BIN" run -r "$F" --speed max --no-listen \
    --data "$BENCH_DIR/run-store" --bin-retention 36500d --flow-retention 36500d
RUN_CPU=$CPU
STORE_CPU=$(grep -o 'store writer: [0-9.]* s CPU' "$ERR" | grep -o '[0-9.]*' | head -1)
STORE_SIZE=$(du -sb "$BENCH_DIR/run-store" | cut -f1)
SUMMARY=$(grep -E 'packets, [0-9]+ bins' "$ERR" | sed 's/^trafficscope: //')

echo
echo "$F: $BENCH_PACKETS packets, time scale $SCALE; best of $BENCH_RUNS runs by CPU time, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| command | CPU s | M packets/s (CPU) | peak RSS MB | wall s |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
printf 'run / flows: %.2fx CPU; run / classify: %.2fx; store writer thread: %s s CPU (%.1f %% of run)\n' \
    "$(echo "$RUN_CPU / $FLOWS_CPU" | bc -l)" "$(echo "$RUN_CPU / $CLASSIFY_CPU" | bc -l)" \
    "$STORE_CPU" "$(echo "100 * $STORE_CPU / $RUN_CPU" | bc -l)"
echo "run: $SUMMARY"
echo "store: $STORE_SIZE bytes after the run"
done
