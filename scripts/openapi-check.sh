#!/usr/bin/env bash
# Schema-driven fuzzing of the REST API: schemathesis (PyPI) with every check against
# /api/openapi.json of a fresh demo server, bounded examples. Exits non-zero on any failure or
# server error. Usage: scripts/openapi-check.sh [server binary] (default: target/debug).
set -euo pipefail
cd "$(dirname "$0")/.."
server="${1:-${CARGO_TARGET_DIR:-target}/debug/signaling-server}"
venv="${BANGBAN_ST_VENV:-${CARGO_TARGET_DIR:-target}/schemathesis-venv}"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis
fi
data="$(mktemp -d)"
port="${BANGBAN_ST_PORT:-18613}"
BANGBAN_LISTEN="127.0.0.1:$port" BANGBAN_DATA_DIR="$data" BANGBAN_DEMO=true "$server" >"$data/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
token="$(curl -sf -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bangban-demo"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
"$venv/bin/st" run "http://127.0.0.1:$port/api/openapi.json" --checks all --max-examples 5 --workers 2 \
  --seed 1 -H "Authorization: Bearer $token"
