#!/usr/bin/env bash
# Runs the whole test suite: unit and integration tests on SQLite, then the server's
# integration tests again on PostgreSQL (127.0.0.1:5432, database `test`, one schema per test).
# Installs what it needs first. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${BANGBAN_SKIP_INSTALL:-}" != 1 ] && [ -x scripts/install-system-deps.sh ]; then
  scripts/install-system-deps.sh --test
fi

# PostgreSQL: start the machine's cluster if it is not answering.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
for _ in $(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 0.2; done
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }

# Printer and scanner for the terminal's end-to-end tests (CUPS with cups-pdf, SANE test backend).
[ -x scripts/cups-setup.sh ] && scripts/cups-setup.sh >/dev/null
if [ -x scripts/sane-test-setup.sh ]; then
  export SANE_CONFIG_DIR="${SANE_CONFIG_DIR:-$PWD/target/sane-test}"
  scripts/sane-test-setup.sh "$SANE_CONFIG_DIR" >/dev/null
fi

echo "== tests on SQLite (unit, server, terminal, end-to-end) =="
cargo test --workspace --locked

echo "== server and end-to-end tests on PostgreSQL =="
BANGBAN_TEST_DB=postgres cargo test --locked -p signaling-server --test api
BANGBAN_TEST_DB=postgres cargo test --locked -p bangban-e2e

echo "== the cluster's nginx configuration in front of two real nodes =="
scripts/nginx-cluster-check.sh "${CARGO_TARGET_DIR:-target}/debug/signaling-server"

echo "== console tests in Chromium =="
(cd agent-console && npm ci --no-audit --no-fund && npm test)

echo "== the OpenAPI document against the server: schemathesis, all checks, fixed seed =="
# The debug server that `cargo test --workspace` built; fails on any failure or server error.
scripts/openapi-check.sh "${CARGO_TARGET_DIR:-target}/debug/signaling-server"

echo "== fuzz targets: crashers found before, then a few seconds each on the stored corpus =="
# cargo-fuzz on stable: no AddressSanitizer (-Zsanitizer is nightly-only), hence --sanitizer none
# and RUSTC_BOOTSTRAP for the -Z flags cargo-fuzz passes. Long runs: BENCHMARKS.md.
(
  cd fuzz
  for target in ws_decode sdp tus_headers; do
    features=(); [ "$target" = tus_headers ] && features=(--features server)
    mkdir -p "corpus/$target" "regressions/$target"
    seeds=(); for f in "regressions/$target"/*; do [ -f "$f" ] && seeds+=("$f"); done
    if [ "${#seeds[@]}" -gt 0 ]; then
      RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "${features[@]}" "$target" -- -runs=0 "${seeds[@]}"
    fi
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "${features[@]}" "$target" "corpus/$target" \
      -- -max_total_time=10 -rss_limit_mb=1024
  done
)

echo "== benchmark harness, short mode (fails on errors, never on timings) =="
cargo run --locked --release -p bangban-bench -- all --short

# Drop the per-test schemas the PostgreSQL run left behind.
psql -h 127.0.0.1 -U postgres -d test -qAt -c \
  "SELECT 'DROP SCHEMA ' || nspname || ' CASCADE;' FROM pg_namespace WHERE nspname LIKE 't\_%'" \
  | psql -h 127.0.0.1 -U postgres -d test -q >/dev/null 2>&1 || true
echo "all tests passed"
