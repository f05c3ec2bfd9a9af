#!/usr/bin/env bash
# The cost of shadow reads to the answers served: a native `GET /api/v1/invoices/{id}` under
# wrk with `shadow_reads = 0` and `= 1.0` (every read also sent to the target, a native store on
# a SQLite file of its own, after a `nestgate migrate` copy), alternated twice in one run of
# this script so both see the same machine. Each connection pauses PAUSE_MS between requests,
# so the load is one the machine carries (PAUSE_MS=0 saturates it: the shadow calls, which run
# only when a core idles, are then mostly dropped). It prints requests/s, p50 and p99 for each
# run, the shadow outcomes the gateway counted, and the ratios of the served latencies.
# docs/performance.md holds the figures.
#
# Usage: bash benches/shadow.sh        (DURATION=10s CONNECTIONS=8 PAUSE_MS=2 by default)
# Needs wrk and curl (Debian packages; installed with apt-get when missing) and python3.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
PAUSE_MS=${PAUSE_MS:-2}
PORT=${PORT:-18193}
ADMIN_TOKEN=shadow-bench-operator-token-0123456789

cd "$(dirname "$0")/.."
ROOT=$(pwd)
for tool in wrk curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "installing $tool (Debian package)" >&2
        apt-get install -y -q "$tool" >/dev/null
    fi
done
cargo build --release --quiet
BIN="$ROOT/target/release/nestgate"
WORK=$(mktemp -d)
GATEWAY=""
trap '[ -n "$GATEWAY" ] && kill "$GATEWAY" 2>/dev/null; rm -rf "$WORK"' EXIT

config() { # share
    cat > "$WORK/nestgate.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
[storage]
url = "sqlite://$WORK/source.db"
[log]
level = "warn"
[backends.local]
kind = "native"
[backends.archive]
kind = "native"
url = "sqlite://$WORK/target.db"
[orgs.bench]
backend = "local"
[orgs.bench.migrate_to]
backend = "archive"
shadow_reads = $1
EOF
}
start() {
    NESTGATE_ADMIN_TOKEN=$ADMIN_TOKEN "$BIN" serve --config "$WORK/nestgate.toml" >> "$WORK/gateway.log" 2>&1 &
    GATEWAY=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "the gateway did not start" >&2; tail "$WORK/gateway.log" >&2; exit 1
}
stop() { kill "$GATEWAY"; wait "$GATEWAY" 2>/dev/null || true; GATEWAY=""; }

config 0
start
read -r TOKEN INVOICE < <(python3 - "$PORT" "$ADMIN_TOKEN" <<'PY'
import http.client, json, sys
port, admin = sys.argv[1], sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", int(port))
def call(method, path, body, token):
    conn.request(method, path, json.dumps(body), {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    reply = conn.getresponse()
    data = json.loads(reply.read() or b"{}")
    assert reply.status < 300, (reply.status, data)
    return data
key = call("POST", "/admin/v1/keys", {"org": "bench", "scopes": "read:invoices write:invoices write:clients"}, admin)
conn.request("POST", "/api/v1/auth/token", json.dumps({"grant_type": "client_credentials", "client_id": key["client_id"], "client_secret": key["client_secret"]}), {"Content-Type": "application/json"})
token = json.loads(conn.getresponse().read())["access_token"]
client = call("POST", "/api/v1/clients", {"name": "Acme"}, token)
lines = [{"description": "Work", "quantity": "2.5", "unit_price": "100.00", "tax_rate": "8.875"}]
invoice = call("POST", "/api/v1/invoices", {"client_id": client["id"], "line_items": lines, "status": "sent"}, token)
print(token, invoice["id"])
PY
)
"$BIN" migrate bench --config "$WORK/nestgate.toml" > "$WORK/migrate.txt" || { cat "$WORK/migrate.txt" >&2; exit 1; }
stop

to_ms() { # wrk prints 812.00us, 1.23ms, 1.02s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "%s", v } }'
}
cat > "$WORK/pause.lua" <<EOF
function delay() return $PAUSE_MS end
EOF
declare -A P50 P99
printf '%-12s %10s %9s %9s  %s\n' shadow "requests/s" "p50 ms" "p99 ms" "shadow outcomes counted"
for round in 1 2; do
    for share in 0 1.0; do
        config "$share"
        start
        out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/pause.lua" \
            -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/invoices/$INVOICE")
        sleep 1
        outcomes=$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^nestgate_shadow_reads_total/ {
            match($0, /outcome="[a-z]+"/); o = substr($0, RSTART + 9, RLENGTH - 10); n[o] += $NF }
            END { for (o in n) printf "%s=%d ", o, n[o] }')
        stop
        non2xx=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {print $NF}')
        [ -z "$non2xx" ] || { echo "non-2xx answers: $non2xx" >&2; exit 1; }
        rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
        p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
        p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
        P50[$share]="${P50[$share]:-} $p50"
        P99[$share]="${P99[$share]:-} $p99"
        printf '%-12s %10s %9s %9s  %s\n' "$share (#$round)" "$rps" "$p50" "$p99" "${outcomes:-none}"
    done
done
mean() { echo "$1" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "served p50 with shadow 1.0 / without: $(ratio "$(mean "${P50[1.0]}")" "$(mean "${P50[0]}")")"
echo "served p99 with shadow 1.0 / without: $(ratio "$(mean "${P99[1.0]}")" "$(mean "${P99[0]}")")"
