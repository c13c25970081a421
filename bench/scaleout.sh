#!/usr/bin/env bash
# Cost of the scale-out path against the one-process service, on the same
# packets, whole processes, in the same run:
#
#   bench/scaleout.sh
#
#   run -r F --speed max --no-listen                       (embedded store: the baseline)
#   run -r F --speed max --no-listen --store clickhouse://  (the same into ClickHouse)
#   run -r F --speed max --to kafka://…                     (capture node: encode + publish)
#   the same with --no-compression
#   run --from kafka://… --group G --exit-idle 3s           (analysis node, embedded store)
#   run --from kafka://… --group G2 --exit-idle 3s --store clickhouse://
#
# The broker and ClickHouse are the ones `scripts/services up` starts (on
# this machine, beside the benchmark: they share its cores). Environment:
# BENCH_PACKETS (default 1000000), BENCH_TIME_SCALE (default 100: the
# benchmark capture's 29 h of capture time played in 17 min), BENCH_DIR
# (default /work/bench-data), CARGO_TARGET_DIR.
set -euo pipefail

BENCH_PACKETS="${BENCH_PACKETS:-1000000}"
BENCH_TIME_SCALE="${BENCH_TIME_SCALE:-100}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! "$REPO/scripts/services" status >/dev/null 2>&1; then
    say "starting the services (scripts/services up)"
    "$REPO/scripts/services" up >&2
fi
eval "$("$REPO/scripts/services" env)"
[[ -n "${TS_KAFKA:-}" && -n "${TS_CLICKHOUSE:-}" ]] || die "scripts/services env gave no TS_KAFKA/TS_CLICKHOUSE"

build_release
F="$(bench_capture "$BENCH_PACKETS" "$BENCH_TIME_SCALE")"

STAMP="$(date +%s)-$$"
TOPIC="bench-$STAMP"
CH_HTTP="${TS_CLICKHOUSE/clickhouse:\/\//http://}"
ch() { curl -sS "$CH_HTTP/" --data-binary "$1"; }
KEEP=(--flow-retention 36500d --bin-retention 36500d)
IDLE=3

ROWS=()
# measure LABEL IDLE_S CMD... : CPU, wall (less IDLE_S), peak RSS of one run.
measure() {
    local label="$1" idle="$2"; shift 2
    rm -rf "$BENCH_DIR/scaleout-store"
    say "$label"
    local t0=$EPOCHREALTIME
    /usr/bin/time -v -o "$LOG/time.txt" "$@" >/dev/null 2>"$LOG/err.txt" || { cat "$LOG/err.txt" >&2; die "$label failed"; }
    local t1=$EPOCHREALTIME
    local user sys rss cpu wall
    user=$(awk -F': ' '/User time/ {print $2}' "$LOG/time.txt")
    sys=$(awk -F': ' '/System time/ {print $2}' "$LOG/time.txt")
    rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$LOG/time.txt")
    cpu=$(echo "$user + $sys" | bc -l)
    wall=$(echo "$t1 - $t0 - $idle" | bc -l)
    LAST_LOG="$LOG/$(echo "$label" | tr -c 'a-z0-9' '-').txt"
    cp "$LOG/err.txt" "$LAST_LOG"
    ROWS+=("$(printf '| %s | %.2f | %.2f | %.2f | %.2f | %d |' "$label" "$cpu" "$wall" \
        "$(echo "$BENCH_PACKETS / $cpu / 1000000" | bc -l)" \
        "$(echo "$BENCH_PACKETS / $wall / 1000000" | bc -l)" "$((rss / 1024))")")
}

measure "run, embedded store" 0 "$BIN" run -r "$F" --speed max --no-listen \
    --data "$BENCH_DIR/scaleout-store" "${KEEP[@]}"
measure "run --store clickhouse" 0 "$BIN" run -r "$F" --speed max --no-listen \
    --data "$BENCH_DIR/scaleout-store" --store "$TS_CLICKHOUSE/bench_local_${STAMP//-/_}" "${KEEP[@]}"
measure "capture node (--to kafka)" 0 "$BIN" run -r "$F" --speed max \
    --to "$TS_KAFKA/$TOPIC" --node bench --partitions 4
PUBLISHED="$(grep -o '[0-9.]* bytes/record before compression' "$LAST_LOG" || true)"
CAPTURE_LOG="$LAST_LOG"
measure "capture node (--to kafka --no-compression)" 0 "$BIN" run -r "$F" --speed max \
    --to "$TS_KAFKA/$TOPIC-raw" --node bench --partitions 4 --no-compression
LAST_LOG="$CAPTURE_LOG"
MESSAGES="$(grep -o 'acknowledged in [0-9]* messages' "$LAST_LOG" | grep -o '[0-9]*' || true)"

# The consumer group's lag while the first analysis node works through the
# topic, read from its /metrics every 0.2 s: "SECONDS MESSAGES" lines.
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LAGS="$LOG/lag.txt"
: >"$LAGS"
(
    t0=$EPOCHREALTIME
    while sleep 0.2; do
        v="$(curl -s --max-time 1 "http://127.0.0.1:$PORT/metrics" \
            | awk '$1 == "trafficscope_kafka_consumer_lag_messages" {print $2}')" || true
        [[ -n "$v" ]] && printf '%.1f %s\n' "$(echo "$EPOCHREALTIME - $t0" | bc -l)" "$v" >>"$LAGS"
    done
) &
SAMPLER=$!
measure "analysis node, embedded store" "$IDLE" "$BIN" run --from "$TS_KAFKA/$TOPIC" \
    --group "g1-$STAMP" --listen "127.0.0.1:$PORT" --exit-idle "${IDLE}s" \
    --data "$BENCH_DIR/scaleout-store" "${KEEP[@]}"
kill "$SAMPLER" 2>/dev/null || true
# The peak, when it was down to half, and when back to 0 (seconds from
# the start). Offsets commit at replay points: messages still needed to
# rebuild a flow that is open count until it ends.
LAG_LINE="$(awk '
    $2 > max { max = $2; at = $1; half = ""; zero = "" }
    max > 0 && $2 <= max / 2 && half == "" { half = $1 }
    max > 0 && $2 == 0 && zero == "" { zero = $1 }
    END {
        if (max == 0) { print "no lag seen"; exit }
        printf "peak %d messages at %.1f s, half at %s s, 0 at %s s", max, at, \
            (half == "" ? "-" : half), (zero == "" ? "never" : zero)
    }' "$LAGS")"
measure "analysis node --store clickhouse" "$IDLE" "$BIN" run --from "$TS_KAFKA/$TOPIC" \
    --group "g2-$STAMP" --no-listen --exit-idle "${IDLE}s" --data "$BENCH_DIR/scaleout-store" \
    --store "$TS_CLICKHOUSE/bench_kafka_${STAMP//-/_}" "${KEEP[@]}"

CH_BYTES="$(ch "SELECT sum(bytes) FROM system.parts WHERE database = 'bench_kafka_${STAMP//-/_}' AND active")"
TOPIC_BYTES="$(du -sb "/tmp/trafficscope-services-$(id -u)" 2>/dev/null | cut -f1 || echo '?')"
CH_CPU="$(ps -o cputime= -C clickhouse-server 2>/dev/null | head -1 || true)"

printf '\n%s packets (%s), %s, 2 cores shared with the broker and ClickHouse\n\n' \
    "$BENCH_PACKETS" "$(basename "$F")" "$(date -u +%Y-%m-%d)"
printf '| command | CPU s | wall s | M packets/s (CPU) | M packets/s (wall) | peak RSS MB |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${ROWS[@]}"
printf '\nrecord size: %s; ClickHouse database after the analysis node: %s bytes; services state dir: %s bytes\n' \
    "${PUBLISHED:-?}" "$CH_BYTES" "$TOPIC_BYTES"
printf 'consumer lag of the first analysis node (/metrics every 0.2 s, %s messages in the topic): %s\n' \
    "${MESSAGES:-?}" "$LAG_LINE"
printf 'ClickHouse server CPU time since it started (all its work, not only this run): %s\n' "${CH_CPU:-?}"
ch "DROP DATABASE IF EXISTS bench_local_${STAMP//-/_}" >/dev/null
ch "DROP DATABASE IF EXISTS bench_kafka_${STAMP//-/_}" >/dev/null
