#!/usr/bin/env bash
# Runs the server on its embedded defaults (SQLite and files under ./data) with demo data.
# Console: http://127.0.0.1:8080/ — accounts in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BANGBAN_SKIP_INSTALL:-}" != 1 ] && [ -x scripts/install-system-deps.sh ]; then
  scripts/install-system-deps.sh --server
fi
# The console is plain JavaScript bundled by esbuild: served from agent-console/dist.
(cd agent-console && npm ci --no-audit --no-fund && npm run build)
exec cargo run --locked --release -p signaling-server -- --demo --data-dir "${BANGBAN_DATA_DIR:-./data}" "$@"
