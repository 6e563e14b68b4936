#!/usr/bin/env bash
# Runs a demo terminal (test camera and microphone, headless media, SANE's virtual `test`
# scanner, the cups-pdf printer queue) against the demo server started by scripts/demo.sh:
# enrolls with the first demo code once, then runs. The kiosk UI is at http://127.0.0.1:8090/.
# The console shows log lines only; the full status is in data/demo-terminal/status.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BANGBAN_SKIP_INSTALL:-}" != 1 ] && [ -x scripts/install-system-deps.sh ]; then
  scripts/install-system-deps.sh --terminal
fi
[ -x scripts/cups-setup.sh ] && scripts/cups-setup.sh >/dev/null || true
cfg=deploy/endpoint.demo.toml
mkdir -p data/demo-terminal
# The virtual scanner (`test:0`): a private SANE configuration with only the test backend
# (the stock one has it commented out, hence "no SANE devices found").
eval "$(scripts/sane-test-setup.sh data/demo-terminal/sane)"
if command -v scanimage >/dev/null 2>&1; then
  scanimage -L 2>/dev/null | grep -q "test:0" && echo "demo-terminal: scanner test:0 ready" \
    || echo "demo-terminal: scanimage does not list test:0 (is sane-utils installed?)" >&2
fi
cargo build --locked --release -p endpoint-client
bin="${CARGO_TARGET_DIR:-target}/release/endpoint-client"
if [ ! -s data/demo-terminal/credential ]; then
  code=$(awk 'NR==1 {print $2}' data/demo-enrollment.txt)
  "$bin" --config "$cfg" enroll --code "$code"
fi
exec "$bin" --config "$cfg" run
