#!/usr/bin/env bash
# Runs a demo terminal (test camera and microphone, headless media) against the demo server
# started by scripts/demo.sh: enrolls with the first demo code once, then runs. The kiosk UI is
# at http://127.0.0.1:8090/.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BANGBAN_SKIP_INSTALL:-}" != 1 ] && [ -x scripts/install-system-deps.sh ]; then
  scripts/install-system-deps.sh --terminal
fi
[ -x scripts/cups-setup.sh ] && scripts/cups-setup.sh >/dev/null || true
cfg=deploy/endpoint.demo.toml
mkdir -p data/demo-terminal
cargo build --locked --release -p endpoint-client
bin="${CARGO_TARGET_DIR:-target}/release/endpoint-client"
if [ ! -s data/demo-terminal/credential ]; then
  code=$(awk 'NR==1 {print $2}' data/demo-enrollment.txt)
  "$bin" --config "$cfg" enroll --code "$code"
fi
exec "$bin" --config "$cfg" run
