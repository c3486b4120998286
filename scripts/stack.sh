#!/usr/bin/env bash
# README command 1: bring the whole platform up locally, without Docker.
# Installs missing packages, builds the binaries, then runs `todoctl stack up`
# (Postgres, the broker, command/query services, event processor) until Ctrl-C.
# Extra arguments go to `todoctl stack up` (see `--help`), e.g. --smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> cargo build --bins"
cargo build --quiet --bins
exec target/debug/todoctl stack up "$@"
