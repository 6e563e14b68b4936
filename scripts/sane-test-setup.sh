#!/usr/bin/env bash
# 测试用虚拟扫描仪 — a private SANE configuration with only the `test` backend (a virtual
# scanner, device `test:0`) set to A4 colour pages, for tests without scanner hardware.
#
#   eval "$(scripts/sane-test-setup.sh DIR)"     # exports SANE_CONFIG_DIR=DIR
#
# Writes DIR/dll.conf and DIR/test.conf (idempotent; no root needed) and prints the export line.
# Needs sane-utils (scripts/install-system-deps.sh --terminal).
set -euo pipefail

dir="${1:?usage: $0 DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

echo test >"$dir/dll.conf"
# Option names as in /etc/sane.d/test.conf (sane-backends 1.2). Lengths in mm; geometry_max
# must exceed A4's 297 mm (the stock value is 200).
cat >"$dir/test.conf" <<'EOF'
number_of_devices 1
mode Color
depth 8
resolution_min 1.0
resolution_max 1200.0
resolution_quant 1.0
resolution 150.0
test-picture "Color pattern"
geometry_min 0.0
geometry_max 300.0
geometry_quant 1.0
tl_x 0.0
tl_y 0.0
br_x 210.0
br_y 297.0
EOF
echo "export SANE_CONFIG_DIR=$dir"
