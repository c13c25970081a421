#!/usr/bin/env bash
# Benchmarks the selfsim estimators and their Python peers on the same
# N = 2^20 fGn series (H = 0.8). Pins both to one core when taskset exists.
# Usage: scripts/selfsim-bench-peers.sh [WORKDIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
cd "$root"
cargo build --release -p selfsim --example bench_estimators
bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/bench_estimators"
echo "== selfsim (Rust) =="
"${pin[@]}" "$bin" --write "$work/fgn_2p20.txt"
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  # nolds 0.6.x fails to import on Python < 3.12 (importlib.resources on a
  # module); 0.5.2 works with setuptools' pkg_resources.
  "$work/venv/bin/pip" install --quiet numpy "nolds==0.5.2" "setuptools<81" hurst
fi
echo "== Python peers =="
"${pin[@]}" "$work/venv/bin/python" "$root/scripts/selfsim_peers.py" "$work/fgn_2p20.txt" --dfa
