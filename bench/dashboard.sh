#!/usr/bin/env bash
# The dashboard's figures (README, "The dashboard"): page weight, first
# render with 24 h of history, the live page's CPU and the server's cost
# per connected page, measured in Debian's chromium. Needs chromium and
# chromium-driver (scripts/test installs them). Takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trafficscope-target}"
cargo test --release -p trafficscope --test dashboard -- --ignored --nocapture dashboard_figures 2>&1 \
  | grep -E '^(dashboard figures|  )'
