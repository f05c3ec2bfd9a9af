#!/usr/bin/env bash
# The migration benchmark: an organization of 1,000 clients, 5,000 invoices of 3 lines each
# (half of them sent) and 3,000 payments on the native store (SQLite) is moved to another native
# store (a SQLite file of its own) with `nestgate migrate`, on the release build. It prints the
# records copied per second, the same for the verification alone, and the peak resident memory
# of the migrate process (GNU time). docs/performance.md holds the figures.
#
# Usage: bash benches/migrate.sh       (CLIENTS=1000 INVOICES=5000 PAYMENTS=3000 by default;
#        PARALLEL=N sets [orgs.bench.migrate_to] parallel_writes, unset by default;
#        NESTGATE_BIN=/path/to/nestgate runs that binary, unbuilt)
# Needs python3 (to seed through the API) and /usr/bin/time (Debian package `time`).
set -euo pipefail

CLIENTS=${CLIENTS:-1000}
INVOICES=${INVOICES:-5000}
PAYMENTS=${PAYMENTS:-3000}
PORT=${PORT:-18191}
ADMIN_TOKEN=migrate-bench-operator-token-0123456789

cd "$(dirname "$0")/.."
ROOT=$(pwd)
if ! [ -x /usr/bin/time ]; then
    echo "installing time (Debian package)" >&2
    apt-get install -y -qq time >/dev/null
fi
[ -n "${NESTGATE_BIN:-}" ] || cargo build --release --quiet
BIN="${NESTGATE_BIN:-$ROOT/target/release/nestgate}"
WORK=$(mktemp -d)
trap 'kill "${GATEWAY:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

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
EOF
if [ -n "${PARALLEL:-}" ]; then
    echo "parallel_writes = $PARALLEL" >> "$WORK/nestgate.toml"
fi

NESTGATE_ADMIN_TOKEN=$ADMIN_TOKEN "$BIN" serve --config "$WORK/nestgate.toml" > "$WORK/gateway.log" 2>&1 &
GATEWAY=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

echo "seeding $CLIENTS clients, $INVOICES invoices of 3 lines, $PAYMENTS payments" >&2
python3 - "$PORT" "$ADMIN_TOKEN" "$CLIENTS" "$INVOICES" "$PAYMENTS" <<'PY'
import http.client, json, sys
port, admin, clients, invoices, payments = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
conn = http.client.HTTPConnection("127.0.0.1", int(port))
def call(method, path, body, token):
    conn.request(method, path, json.dumps(body), {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    reply = conn.getresponse()
    data = json.loads(reply.read() or b"{}")
    assert reply.status < 300, (reply.status, data)
    return data
scopes = "write:clients write:invoices write:payments read:invoices"
key = call("POST", "/admin/v1/keys", {"org": "bench", "scopes": scopes}, admin)
conn.request("POST", "/api/v1/auth/token", json.dumps({"grant_type": "client_credentials", "client_id": key["client_id"], "client_secret": key["client_secret"]}), {"Content-Type": "application/json"})
token = json.loads(conn.getresponse().read())["access_token"]
ids = [call("POST", "/api/v1/clients", {"name": f"Client {i}", "email": f"c{i}@bench.test"}, token)["id"] for i in range(clients)]
lines = [{"description": "Work", "quantity": "2.5", "unit_price": "100.00", "tax_rate": "8.875"},
         {"description": "Parts", "quantity": "3", "unit_price": "19.99", "tax_rate": "8.875"},
         {"description": "Travel", "quantity": "1", "unit_price": "45.00"}]
invoice_ids = []
for i in range(invoices):
    body = {"client_id": ids[i % clients], "line_items": lines}
    if i < payments or i % 2 == 0:
        body["status"] = "sent"
    invoice_ids.append(call("POST", "/api/v1/invoices", body, token)["id"])
for i in range(payments):
    call("POST", "/api/v1/payments", {"invoice_id": invoice_ids[i], "amount": "100.00"}, token)
PY
RECORDS=$((CLIENTS + INVOICES + PAYMENTS))

run() {
    local label=$1; shift
    local started ended
    started=$(date +%s.%N)
    /usr/bin/time -v -o "$WORK/time.txt" "$BIN" migrate bench --config "$WORK/nestgate.toml" "$@" > "$WORK/report.txt" 2>"$WORK/progress.txt" || {
        echo "migrate exited $?:" >&2; cat "$WORK/report.txt" "$WORK/progress.txt" >&2; exit 1; }
    ended=$(date +%s.%N)
    local seconds rss
    seconds=$(echo "$ended - $started" | bc -l)
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    printf "%-22s %6d records in %7.2f s: %8.0f records/s, peak RSS %6.1f MiB\n" \
        "$label" "$RECORDS" "$seconds" "$(echo "$RECORDS / $seconds" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
}

run "copy and verify"
run "verify only" --verify
run "catch-up (no change)"
tail -n 3 "$WORK/report.txt"
