#!/usr/bin/env bash
# 配置测试用的 PDF 打印队列 — sets up the CUPS queue `bangban-pdf` that prints to PDF files.
#
#   scripts/cups-setup.sh [OUTPUT_DIR]      (default /var/spool/cups-pdf/bangban)
#
# Starts cupsd if it is not running, points cups-pdf at OUTPUT_DIR (mode 1777; every job lands
# there as job_<id>-<title>.pdf), and creates, enables and accepts the queue. Idempotent.
# Needs the packages of scripts/install-system-deps.sh --terminal; root or sudo.
set -euo pipefail

out_dir="${1:-/var/spool/cups-pdf/bangban}"
queue=bangban-pdf
conf=/etc/cups/cups-pdf.conf
ppd=/usr/share/ppd/cups-pdf/CUPS-PDF_noopt.ppd

if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
for f in /usr/sbin/cupsd "$conf" "$ppd"; do
  [ -e "$f" ] || { echo "cups-setup: $f missing; run scripts/install-system-deps.sh --terminal" >&2; exit 1; }
done

scheduler_running() { [[ "$(lpstat -r 2>/dev/null || true)" == *'scheduler is running'* ]]; }
if ! scheduler_running; then
  if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    "${as_root[@]}" systemctl start cups
  else
    "${as_root[@]}" /usr/sbin/cupsd   # forks into the background
  fi
  for _ in $(seq 1 50); do scheduler_running && break; sleep 0.2; done
  scheduler_running || { echo "cups-setup: cupsd did not start" >&2; exit 1; }
fi

# Set `Key value` in cups-pdf.conf: replace an active line, or append one.
set_key() {
  if grep -q "^$1[[:space:]]" "$conf"; then
    "${as_root[@]}" sed -i "s|^$1[[:space:]].*|$1 $2|" "$conf"
  else
    echo "$1 $2" | "${as_root[@]}" tee -a "$conf" >/dev/null
  fi
}
"${as_root[@]}" mkdir -p "$out_dir"
"${as_root[@]}" chmod 1777 "$out_dir"
set_key Out "$out_dir"
set_key AnonDirName "$out_dir"
set_key Label 1

msg=$("${as_root[@]}" lpadmin -p "$queue" -E -v cups-pdf:/ -P "$ppd" -o printer-error-policy=abort-job 2>&1) \
  || { echo "$msg" >&2; exit 1; }
grep -v 'deprecated' <<<"$msg" >&2 || true   # CUPS 2.4 warns that PPD drivers are deprecated
"${as_root[@]}" cupsenable "$queue"
"${as_root[@]}" cupsaccept "$queue"
lpstat -p "$queue" >/dev/null || { echo "cups-setup: queue $queue missing" >&2; exit 1; }
echo "cups-setup: queue $queue ready, PDFs in $out_dir"

# A second queue for the hung-job tests: `bangban-hang`, a raw queue whose backend writes each
# document to $hang_dir as job_<id>-<title>.pdf, except documents containing the marker
# BANGBAN-HANG, on which it hangs (until CUPS cancels the job), like a printer that never finishes.
hang_queue=bangban-hang
hang_dir="${out_dir%/*}/bangban-hang"
backend=/usr/lib/cups/backend/bangban-hang
"${as_root[@]}" mkdir -p "$hang_dir"
"${as_root[@]}" chmod 1777 "$hang_dir"
"${as_root[@]}" tee "$backend" >/dev/null <<BACKEND
#!/bin/sh
# Test backend of scripts/cups-setup.sh: hangs on documents containing BANGBAN-HANG.
if [ \$# -eq 0 ]; then echo 'direct bangban-hang "Unknown" "Bangban test backend"'; exit 0; fi
tmp=\$(mktemp) || exit 1
cat "\${6:--}" > "\$tmp"
if grep -q BANGBAN-HANG "\$tmp"; then
  echo "INFO: hanging on purpose" >&2
  rm -f "\$tmp"
  exec sleep 86400
fi
mv "\$tmp" "$hang_dir/job_\$1-\$3.pdf"
chmod 644 "$hang_dir/job_\$1-\$3.pdf"
exit 0
BACKEND
"${as_root[@]}" chmod 0755 "$backend"
msg=$("${as_root[@]}" lpadmin -p "$hang_queue" -E -v bangban-hang:/ -o printer-error-policy=abort-job 2>&1) \
  || { echo "$msg" >&2; exit 1; }
grep -v 'deprecated' <<<"$msg" >&2 || true
"${as_root[@]}" cupsenable "$hang_queue"
"${as_root[@]}" cupsaccept "$hang_queue"
echo "cups-setup: queue $hang_queue ready (hangs on BANGBAN-HANG), PDFs in $hang_dir"
