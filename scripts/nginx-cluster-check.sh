#!/usr/bin/env bash
# Checks deploy/cluster/nginx.conf against real nodes: two signaling-server nodes in cluster mode
# (the machine's PostgreSQL, a fresh schema; its Redis, a fresh key prefix) behind nginx with the
# deployment's configuration (upstreams pointed at the local nodes, TLS with a throwaway
# certificate). Through nginx: sign-in, the cluster view listing both nodes, a WebSocket upgrade,
# and the client address the audit log records (nginx's X-Forwarded-For, believed only because
# nginx is a trusted proxy). Usage: scripts/nginx-cluster-check.sh [path to signaling-server]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/signaling-server}"
[ -x "$bin" ] || { echo "no $bin: cargo build -p signaling-server" >&2; exit 1; }
work="$(mktemp -d)"
pids=()
schema="t_nginx_$$"
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

psql -h 127.0.0.1 -U postgres -d test -qc "CREATE SCHEMA $schema"
db="postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
prefix="nginxcheck$$"
p1=$(free_port); p2=$(free_port); https=$(free_port)
start_node() { # id port
  "$bin" --listen "127.0.0.1:$2" --data-dir "$work/$1" --database-url "$db" --demo \
    --master-key-file "$work/master.key" --redis-url redis://127.0.0.1:6379 --redis-prefix "$prefix" \
    --node-id "$1" --trusted-proxies 127.0.0.1 >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "node $1 did not get ready" >&2; cat "$work/$1.log" >&2; exit 1
}
start_node node1 "$p1"
start_node node2 "$p2"

# The deployment's nginx.conf, pointed at the local nodes and a throwaway certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1
sed -e "s#server node1:8080#server 127.0.0.1:$p1#; s#server node2:8080#server 127.0.0.1:$p2#; /server node3:8080/d" \
    -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https ssl http2;#; s#listen 80;#listen 127.0.0.1:$(free_port);#" \
    -e "s#/etc/nginx/tls/bangban.crt#$work/tls.crt#; s#/etc/nginx/tls/bangban.key#$work/tls.key#" \
    -e "s#^worker_processes auto;#worker_processes 1; pid $work/nginx.pid; error_log $work/nginx-error.log; daemon on;#" \
    -e "s#^http {#http { access_log $work/access.log; client_body_temp_path $work/body; proxy_temp_path $work/proxy;#" \
    deploy/cluster/nginx.conf >"$work/nginx.conf"
nginx -t -q -c "$work/nginx.conf" -p "$work" -g "user $(id -un);" 2>/dev/null || nginx -t -c "$work/nginx.conf" -p "$work"
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 1 50); do [ -f "$work/nginx.pid" ] && break; sleep 0.1; done
front="https://localhost:$https"
c() { curl -sk --resolve "localhost:$https:127.0.0.1" "$@"; }

token=$(c -X POST "$front/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bangban-demo"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
nodes=$(c "$front/api/v1/admin/cluster" -H "authorization: Bearer $token" \
  | python3 -c 'import json,sys; print(",".join(n["id"] for n in json.load(sys.stdin)["nodes"]))')
[ "$nodes" = "node1,node2" ] || { echo "cluster view through nginx: $nodes" >&2; exit 1; }
status=$(c --http1.1 -o /dev/null -w '%{http_code}' --max-time 3 "$front/ws" \
  -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H "Sec-WebSocket-Protocol: bangban.v1, bearer.$token" || true)
[ "$status" = 101 ] || { echo "WebSocket upgrade through nginx: HTTP $status" >&2; exit 1; }
# A client that claims another address is recorded with the address nginx saw.
c -o /dev/null -X POST "$front/api/v1/auth/login" -H 'content-type: application/json' \
  -H 'X-Forwarded-For: 203.0.113.9' -d '{"username":"admin","password":"wrong"}'
seen=$(psql -h 127.0.0.1 -U postgres -d test -qAt -c \
  "SELECT source_ip FROM $schema.audit_log WHERE action = 'auth.login' AND outcome <> 'success' ORDER BY seq DESC LIMIT 1")
[ "$seen" = 127.0.0.1 ] || { echo "audit source address through nginx: '$seen'" >&2; exit 1; }
echo "nginx in front of two nodes: sign-in, cluster view ($nodes), WebSocket 101, client address $seen — ok"
