#!/usr/bin/env bash
# 安装帮办所需的 Debian 12 系统软件包 — installs the Debian 12 packages Bangban needs.
#
#   scripts/install-system-deps.sh [--server] [--terminal] [--test]
#
#   --server    build tools for signaling-server
#   --terminal  build tools + GStreamer (VP8, Opus; H.264 by x264 and libav), SANE,
#               CUPS (+ cups-pdf), poppler for endpoint-client
#   --test      everything the test suite needs (server + terminal + Chromium, CJK fonts,
#               coturn, nginx-light, PostgreSQL client tools, Xvfb (the two screens), and
#               `s3s-fs`, an S3 server over a directory, by `cargo install` into
#               ~/.cargo/bin once); this is the default
#
# Idempotent: asks dpkg what is missing and, only if something is, runs `apt-get update` once
# and `apt-get install -y --no-install-recommends` for the missing packages. Runs as root or
# through sudo, non-interactively. Daemons are not started by the install on machines without
# systemd (containers, CI); scripts/cups-setup.sh starts CUPS when the tests need it.
set -euo pipefail
cd "$(dirname "$0")/.."

want_server=0 want_terminal=0 want_test=0
for arg in "$@"; do
  case "$arg" in
    --server) want_server=1 ;;
    --terminal) want_terminal=1 ;;
    --test) want_test=1 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $arg (use --server, --terminal, --test)" >&2; exit 2 ;;
  esac
done
if [ $((want_server + want_terminal + want_test)) -eq 0 ]; then want_test=1; fi

# qpdf: the server checks every PDF with it before accepting it (materials::check).
build_pkgs=(build-essential pkg-config curl ca-certificates qpdf)
# libssl-dev only when some crate links OpenSSL (today everything uses rustls/RustCrypto).
if grep -q '^name = "openssl-sys"' Cargo.lock 2>/dev/null; then build_pkgs+=(libssl-dev); fi
terminal_pkgs=(
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-tools
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x
  gstreamer1.0-plugins-bad
  sane-utils
  cups cups-client cups-bsd printer-driver-cups-pdf
  poppler-utils ghostscript
)
# python3-venv: scripts/openapi-check.sh installs the pinned schemathesis into a virtualenv.
test_pkgs=(chromium fonts-noto-cjk coturn nginx-light postgresql-client xvfb python3 python3-venv)
# Node.js: the machine's own (e.g. NodeSource) build wins; Debian's only where there is none.
if ! command -v node >/dev/null 2>&1; then test_pkgs+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then test_pkgs+=(npm); fi

pkgs=("${build_pkgs[@]}")
# pg_dump / pg_restore: `signaling-server backup` / `restore` on PostgreSQL (client ≥ the server).
if [ "$want_server" = 1 ]; then pkgs+=(postgresql-client); fi
if [ "$want_terminal" = 1 ] || [ "$want_test" = 1 ]; then pkgs+=("${terminal_pkgs[@]}"); fi
if [ "$want_test" = 1 ]; then pkgs+=("${test_pkgs[@]}"); fi

# The S3-compatible server the materials tests store into (MinIO is not packaged for Debian).
# Installed as the invoking user, not root; a no-op once present. 0.14.1: the newest release
# whose rust-version (1.92) the workspace toolchain meets.
S3S_FS_VERSION=0.14.1
install_s3s_fs() {
  local bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then return 0; fi
  echo "install-system-deps: cargo install s3s-fs $S3S_FS_VERSION"
  cargo install --locked s3s-fs --version "$S3S_FS_VERSION" --features binary
}

# cargo-fuzz for the fuzz targets in fuzz/ (see fuzz/README.md); a no-op once present.
install_cargo_fuzz() {
  if cargo fuzz --version >/dev/null 2>&1; then return 0; fi
  echo "install-system-deps: cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
}

missing=()
for p in "${pkgs[@]}"; do
  # Captured first: `dpkg -s | grep -q` under pipefail fails at random on SIGPIPE.
  status="$(dpkg -s "$p" 2>/dev/null || true)"
  if ! grep -q '^Status: install ok installed' <<<"$status"; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all ${#pkgs[@]} packages present"
  if [ "$want_test" = 1 ]; then install_s3s_fs; install_cargo_fuzz; fi
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-system-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

# Without systemd as PID 1, keep package scripts from starting daemons (nginx would take
# port 80, coturn 3478) unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ] && [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then "${as_root[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install-system-deps: installing ${missing[*]}"
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600)
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
if [ "$want_test" = 1 ]; then install_s3s_fs; install_cargo_fuzz; fi
echo "install-system-deps: done"
