#!/usr/bin/env bash
# Validate everything we deploy, offline: docker-compose.yml, the Kubernetes
# overlays, Terraform, the Dockerfile, the runbook, and every container's
# environment through its binary's --check-config (docs/deployment.md,
# "Validation"). Prints PASS/FAIL per check; exits 1 if any failed.
#
# The four service binaries must be built first (scripts/test.sh does):
# $TODO_BIN_DIR, else $CARGO_TARGET_DIR/debug, else target/debug.
#
# Python tools come from scripts/validate/requirements.txt (pinned) in a
# private virtualenv keyed by that file's hash; kubectl (kustomize) renders the
# overlays; terraform fmt runs when terraform is installed; promtool, amtool,
# haproxy and prometheus-blackbox-exporter come from scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

req=scripts/validate/requirements.txt
hash=$(sha256sum "$req" | cut -c1-12)
venv=${TODO_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/todo-validate/venv-$hash}
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "==> creating $venv (pip install -r $req)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  touch "$venv/.complete"
fi

if [ ! -d ../shared/schemas ] && [ -z "${TODO_SCHEMAS_DIR:-}" ]; then
  echo "error: ../shared/schemas (vendored CRD and Compose schemas) not found; set TODO_SCHEMAS_DIR" >&2
  exit 1
fi

exec "$venv/bin/python" scripts/validate/run_all.py
