#!/usr/bin/env bash
# Load comparison on loopback, in one run (docs/performance.md says how to read it):
#
#   1. nginx serving a static Invoice Ninja client-list page (benches/fixtures/);
#   2. nginx reverse-proxying that page (keep-alive to the static server);
#   3. nestgate serving the same page through its Invoice Ninja backend (token checked, page
#      mapped and rendered in InvoiceNests' shape);
#   4. nestgate's native backend: GET /api/v1/invoices/{id} (SQLite);
#   5. nginx serving, as a static file, the answer nestgate gives to the next run;
#   6. nestgate's native GET /api/v1/invoices?per_page=100 (a page of 100 invoices);
#   7. nestgate's POST /api/v1/auth/token (client_credentials: a session and a refresh token
#      committed to SQLite, then a signed JWT).
#
# For each: requests/s, p50 and p99 latency, non-2xx answers and socket errors (wrk), the CPU
# time the serving side (nginx and nestgate, not wrk) spent per request, and the ratios the
# targets are stated in. nestgate's resident memory (VmRSS) is sampled under load.
#
# Usage: bash benches/load.sh            (DURATION=10s CONNECTIONS=32 THREADS=1 by default)
#        PERF_RUN=nestgate_ninja bash benches/load.sh   also records a perf profile of that run
#        RUNS="nginx_static nestgate_native_get" bash benches/load.sh   only these runs
#        NESTGATE_BIN=/tmp/nestgate-before bash benches/load.sh   a given binary (no build)
#        CALLGRIND=1 RUNS=nestgate_native_get bash benches/load.sh   nestgate under callgrind:
#            its user-space instructions per request, the same on a busy machine as on an idle
#            one (the other columns then measure valgrind, not nestgate)
# Needs nginx and wrk (Debian packages; installed with apt-get when missing and allowed).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ALL_RUNS="nginx_static nginx_proxy nestgate_ninja nestgate_native_get nginx_static_list nestgate_native_list nestgate_token"
RUNS=${RUNS:-$ALL_RUNS}
for name in $RUNS; do
    [[ " $ALL_RUNS " == *" $name "* ]] || { echo "unknown run $name (runs: $ALL_RUNS)" >&2; exit 2; }
done
STATIC_PORT=${STATIC_PORT:-18181}
PROXY_PORT=${PROXY_PORT:-18182}
GATEWAY_PORT=${GATEWAY_PORT:-18183}
ADMIN_TOKEN=load-script-operator-token-0123456789

cd "$(dirname "$0")/.."
ROOT=$(pwd)

for tool in nginx wrk curl; do
    if ! command -v "$tool" >/dev/null && ! [ -x "/usr/sbin/$tool" ]; then
        echo "installing $tool (Debian package)" >&2
        apt-get install -y -q "$( [ "$tool" = nginx ] && echo nginx-light || echo "$tool")" >/dev/null
    fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -n "${NESTGATE_BIN:-}" ]; then
    NESTGATE=$NESTGATE_BIN
else
    cargo build --release --quiet
    NESTGATE=$ROOT/target/release/nestgate
fi

WORK=$(mktemp -d)
NGINX_PID=""
GATEWAY_PID=""
SAMPLER_PID=""
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    [ -n "$GATEWAY_PID" ] && kill "$GATEWAY_PID" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- nginx: the static page, and a plain reverse proxy in front of it -----------------------
mkdir -p "$WORK/www/api/v1"
cp benches/fixtures/ninja-clients-page.json "$WORK/www/api/v1/clients"
# nginx's workers run as an unprivileged user: the page must be readable to them.
chmod 755 "$WORK"
chmod -R a+rX "$WORK/www"
cat > "$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    client_body_temp_path $WORK/tmp;
    proxy_temp_path $WORK/tmp;
    upstream static { server 127.0.0.1:$STATIC_PORT; keepalive 64; }
    server { listen 127.0.0.1:$STATIC_PORT; root $WORK/www; }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://static;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
mkdir -p "$WORK/tmp"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"

# --- nestgate: one organization on the Invoice Ninja backend (the static page), one native ---
cat > "$WORK/nestgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GATEWAY_PORT"
max_concurrent_requests = 4096

[storage]
url = "sqlite://$WORK/nestgate.db"

[log]
format = "json"
level = "info"

[backends.ninja]
kind = "invoiceninja"
base_url = "http://127.0.0.1:$STATIC_PORT"

[backends.local]
kind = "native"

[orgs.ninja]
backend = "ninja"
upstream_token_env = "LOAD_NINJA_TOKEN"

[orgs.native]
backend = "local"
EOF
# The access log is on, as in production; it goes to a file, not a terminal.
LAUNCH=()
if [ -n "${CALLGRIND:-}" ]; then
    command -v valgrind >/dev/null || apt-get install -y -q valgrind >/dev/null
    # Counts are zeroed before each run and dumped after it (callgrind_control).
    LAUNCH=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out")
fi
NESTGATE_ADMIN_TOKEN=$ADMIN_TOKEN LOAD_NINJA_TOKEN=load-ninja-token \
    "${LAUNCH[@]}" "$NESTGATE" serve --config "$WORK/nestgate.toml" > "$WORK/nestgate.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$GATEWAY_PORT/healthz" >/dev/null && break
    sleep 0.1
done
# An answer from another process on the port (one left running) would be measured instead.
if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
    echo "nestgate exited at start:" >&2
    tail -5 "$WORK/nestgate.log" >&2
    exit 1
fi

GW=http://127.0.0.1:$GATEWAY_PORT
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
key_for() {
    curl -sf "$GW/admin/v1/keys" -H "Authorization: Bearer $ADMIN_TOKEN" \
        -H 'Content-Type: application/json' \
        -d "{\"org\":\"$1\",\"scopes\":[\"read:clients\",\"read:invoices\",\"write:clients\",\"write:invoices\"],\"name\":\"load\"}"
}
token_for() {
    curl -sf "$GW/api/v1/auth/token" -H 'Content-Type: application/json' \
        -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$1\",\"client_secret\":\"$2\"}" |
        json_field '["access_token"]'
}
NINJA_KEY=$(key_for ninja)
NATIVE_KEY=$(key_for native)
NINJA_TOKEN=$(token_for "$(echo "$NINJA_KEY" | json_field '["client_id"]')" "$(echo "$NINJA_KEY" | json_field '["client_secret"]')")
NATIVE_ID=$(echo "$NATIVE_KEY" | json_field '["client_id"]')
NATIVE_SECRET=$(echo "$NATIVE_KEY" | json_field '["client_secret"]')
NATIVE_TOKEN=$(token_for "$NATIVE_ID" "$NATIVE_SECRET")
CLIENT_ID=$(curl -sf "$GW/api/v1/clients" -H "Authorization: Bearer $NATIVE_TOKEN" \
    -H 'Content-Type: application/json' -d '{"name":"Load Ltd","email":"ap@load.example"}' |
    json_field '["id"]')
INVOICE_ID=$(curl -sf "$GW/api/v1/invoices" -H "Authorization: Bearer $NATIVE_TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"$CLIENT_ID\",\"line_items\":[{\"description\":\"Consulting\",\"quantity\":\"3\",\"unit_price\":\"120.50\"}]}" |
    json_field '["id"]')
# A page of 100 invoices for the list run; nginx serves nestgate's own answer as a static file,
# the floor of the same bytes. (The one invoice above is the first of them.)
for i in $(seq 2 100); do
    curl -sf "$GW/api/v1/invoices" -H "Authorization: Bearer $NATIVE_TOKEN" \
        -H 'Content-Type: application/json' \
        -d "{\"client_id\":\"$CLIENT_ID\",\"line_items\":[{\"description\":\"Item $i\",\"quantity\":\"$i\",\"unit_price\":\"9.99\"},{\"description\":\"Support\",\"quantity\":\"1\",\"unit_price\":\"40\"}]}" \
        >/dev/null
done
curl -sf "$GW/api/v1/invoices?per_page=100" -H "Authorization: Bearer $NATIVE_TOKEN" \
    -o "$WORK/www/api/v1/invoices-page"
chmod a+r "$WORK/www/api/v1/invoices-page"
# Each run must answer 200 before it is loaded (a sanity check).
for check in "$GW/api/v1/clients $NINJA_TOKEN" "$GW/api/v1/invoices/$INVOICE_ID $NATIVE_TOKEN"; do
    set -- $check
    status=$(curl -s -o "$WORK/check.json" -w '%{http_code}' "$1" -H "Authorization: Bearer $2")
    if [ "$status" != 200 ]; then
        echo "GET $1 answered $status: $(cat "$WORK/check.json")" >&2
        tail -5 "$WORK/nestgate.log" >&2
        exit 1
    fi
done

cat > "$WORK/token.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials&client_id=$NATIVE_ID&client_secret=$NATIVE_SECRET"
EOF

# --- resident memory of nestgate, sampled while the load runs --------------------------------
(
    peak=0
    while kill -0 "$GATEWAY_PID" 2>/dev/null; do
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$GATEWAY_PID/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" > "$WORK/rss-peak-kib"
        sleep 0.2
    done
) &
SAMPLER_PID=$!

# --- the runs --------------------------------------------------------------------------------
declare -A RPS P50 P99 ERRORS CPU_US INSTRUCTIONS
# CPU time (user + system, in clock ticks) of every serving process: nginx's master and
# workers, and nestgate. Per request, it is less at the mercy of a shared machine than
# requests/s: time spent waiting for a core does not count.
serving_ticks() {
    local master pids
    master=$(cat "$WORK/nginx.pid")
    pids="$master $(pgrep -P "$master" | tr '\n' ' ' || true) $GATEWAY_PID"
    for pid in $pids; do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true; done |
        awk '{sum += $1} END {print sum}'
}
to_ms() { # wrk prints 812.00us, 1.23ms, 1.02s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "%s", v } }'
}
run() { # name, then wrk's arguments
    local name=$1
    shift
    [[ " $RUNS " == *" $name "* ]] || return 0
    echo "running $name ($DURATION, $CONNECTIONS connections, $THREADS wrk thread(s))" >&2
    local out perf_pid=""
    if [ "${PERF_RUN:-}" = "$name" ]; then
        # Profile nestgate during this run: PERF_RUN=nestgate_ninja bash benches/load.sh
        # Call stacks from DWARF: the release build keeps no frame pointers.
        perf record -q -F 250 --call-graph dwarf,16384 -p "$GATEWAY_PID" \
            -o "$ROOT/target/perf-$name.data" &
        perf_pid=$!
    fi
    local ticks_before ticks_after counting=""
    if [ -n "${CALLGRIND:-}" ] && [[ $name == nestgate_* ]]; then
        counting=1
        callgrind_control --zero "$GATEWAY_PID" >/dev/null
    fi
    ticks_before=$(serving_ticks)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
    ticks_after=$(serving_ticks)
    if [ -n "$counting" ]; then
        # Returns once the process has written the dump (vgdb runs the command in it).
        callgrind_control --dump="$name" "$GATEWAY_PID" >/dev/null
    fi
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        echo "profile: perf report --children -i target/perf-$name.data" >&2
    fi
    echo "$out" > "$WORK/wrk-$name.txt"
    RPS[$name]=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    P50[$name]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    P99[$name]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    local non2xx socket
    non2xx=$(echo "$out" | awk '/Non-2xx or 3xx responses:/ {print $NF}')
    socket=$(echo "$out" | awk -F'[ ,]+' '/Socket errors:/ {print $4 + $6 + $8 + $10}')
    ERRORS[$name]=$(( ${non2xx:-0} + ${socket:-0} ))
    local requests
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    CPU_US[$name]=$(awk -v t=$(( ticks_after - ticks_before )) -v hz="$(getconf CLK_TCK)" \
        -v n="${requests:-0}" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "n/a" }')
    if [ -n "$counting" ]; then
        # The dump's totals over the requests wrk counted. The dump also holds the requests
        # still open when wrk stopped (nestgate finishes them), the connections' setup and
        # the timers: about CONNECTIONS requests' worth too many, under 1 % at these counts.
        local dump
        dump=$(grep -l "^desc: Trigger: .*$name" "$WORK"/callgrind.out* | tail -1 || true)
        [ -n "$dump" ] || { echo "callgrind wrote no dump for $name" >&2; exit 1; }
        INSTRUCTIONS[$name]=$(awk -v n="${requests:-0}" '/^(summary|totals):/ { t = $2 }
            END { if (n > 0 && t > 0) printf "%.0f", t / n; else print "n/a" }' "$dump")
        cp "$dump" "$ROOT/target/callgrind-$name.out"
        echo "counts by function: callgrind_annotate --inclusive=yes target/callgrind-$name.out" >&2
    fi
}

run nginx_static "http://127.0.0.1:$STATIC_PORT/api/v1/clients"
run nginx_proxy "http://127.0.0.1:$PROXY_PORT/api/v1/clients"
run nestgate_ninja -H "Authorization: Bearer $NINJA_TOKEN" "$GW/api/v1/clients"
run nestgate_native_get -H "Authorization: Bearer $NATIVE_TOKEN" "$GW/api/v1/invoices/$INVOICE_ID"
run nginx_static_list "http://127.0.0.1:$STATIC_PORT/api/v1/invoices-page"
run nestgate_native_list -H "Authorization: Bearer $NATIVE_TOKEN" "$GW/api/v1/invoices?per_page=100"
run nestgate_token -s "$WORK/token.lua" "$GW/api/v1/auth/token"

RSS_KIB=$(cat "$WORK/rss-peak-kib" 2>/dev/null || echo 0)

# --- the report ------------------------------------------------------------------------------
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "loopback load, $(nproc) cores, $DURATION per run, $CONNECTIONS connections, wrk -t$THREADS"
printf '%-22s %12s %10s %10s %8s %12s\n' run "requests/s" "p50 ms" "p99 ms" errors "cpu us/req"
for name in $ALL_RUNS; do
    [ -n "${RPS[$name]:-}" ] || continue
    printf '%-22s %12s %10s %10s %8s %12s\n' "$name" "${RPS[$name]}" "${P50[$name]}" \
        "${P99[$name]}" "${ERRORS[$name]}" "${CPU_US[$name]}"
done
for name in $ALL_RUNS; do
    [ -n "${INSTRUCTIONS[$name]:-}" ] || continue
    echo "$name: ${INSTRUCTIONS[$name]} instructions per request (nestgate, user space, callgrind)"
done
echo
IN_RATIO=$(ratio "${RPS[nestgate_ninja]:-}" "${RPS[nginx_proxy]:-}")
NATIVE_RATIO=$(ratio "${RPS[nestgate_native_get]:-}" "${RPS[nginx_static]:-}")
RSS_MIB=$(awk -v k="$RSS_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
echo "serving CPU per request, Invoice Ninja / nginx proxy:   $(ratio "${CPU_US[nestgate_ninja]:-}" "${CPU_US[nginx_proxy]:-}")x   (target <= 2.0)"
echo "serving CPU per request, native GET / nginx static:     $(ratio "${CPU_US[nestgate_native_get]:-}" "${CPU_US[nginx_static]:-}")x   (target <= 2.0)"
echo "serving CPU per request, native list / nginx same page: $(ratio "${CPU_US[nestgate_native_list]:-}" "${CPU_US[nginx_static_list]:-}")x   (target <= 3.0)"
echo "nestgate Invoice Ninja / nginx proxy: $IN_RATIO requests/s   (target >= 0.6)"
echo "nestgate native GET / nginx static:   $NATIVE_RATIO requests/s   (target >= 0.5)"
echo "nestgate token: ${RPS[nestgate_token]:-n/a} requests/s, p99 ${P99[nestgate_token]:-n/a} ms   (target >= 3000, p99 < 50)"
echo "nestgate peak RSS under load:         $RSS_MIB MiB   (target < 100)"
TOTAL_ERRORS=0
for name in "${!ERRORS[@]}"; do TOTAL_ERRORS=$(( TOTAL_ERRORS + ERRORS[$name] )); done
echo "errors under load:                    $TOTAL_ERRORS   (target 0)"
