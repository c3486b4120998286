#!/usr/bin/env bash
# Regenerate the observer page screenshots in docs/img/ (README and
# docs/observer.md show them). Runs the observer page system test, which
# starts a broker, Prometheus, PostgreSQL, HAProxy and the observer with
# live numbers, checks every page in headless Chromium and, with
# SCREENSHOT_DIR set, saves a PNG of each.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --workspace --bins --quiet
SCREENSHOT_DIR="$PWD/docs/img" cargo test -p system-tests --test observer_page -- --nocapture
ls -l docs/img/observer-*.png
