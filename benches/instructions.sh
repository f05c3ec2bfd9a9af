#!/usr/bin/env bash
# Instructions per call of one function, counted by callgrind while a criterion benchmark runs
# it: a figure that, unlike time, comes out the same on a busy machine (docs/performance.md).
#
# Usage: bash benches/instructions.sh <bench> <benchmark id> <function>
#   e.g. bash benches/instructions.sh lists ninja_clients_page/map \
#            nestgate_invoiceninja::lists::map_clients_page
# Needs valgrind (Debian package).
set -euo pipefail
[ $# -eq 3 ] || { sed -n '5,7p' "$0" >&2; exit 2; }
BENCH=$1 ID=$2 FUNCTION=$3
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || apt-get install -y -q valgrind >/dev/null
BINARY=$(cargo bench --bench "$BENCH" --no-run --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["bench"]:
        print(m["executable"])' | tail -1)
[ -n "$BINARY" ] || { echo "cargo built no benchmark named $BENCH" >&2; exit 1; }
OUT=$(mktemp)
LOG=$(mktemp)
trap 'rm -f "$OUT" "$LOG"' EXIT
if ! valgrind --tool=callgrind --callgrind-out-file="$OUT" --toggle-collect="$FUNCTION" \
    "$BINARY" --bench "$ID" --profile-time 2 >"$LOG" 2>&1; then
    tail -20 "$LOG" >&2
    exit 1
fi
python3 - "$OUT" "$FUNCTION" <<'PY'
import re, sys
path, function = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
total = next(int(l.split()[1]) for l in lines if l.startswith("totals:") or l.startswith("summary:"))
ids = {m.group(1) for l in lines if (m := re.match(r"c?fn=\((\d+)\) (.*)", l)) and m.group(2) == function}
calls = sum(int(lines[i + 1].split()[0][6:]) for i, l in enumerate(lines)
            if (m := re.match(r"cfn=\((\d+)\)", l)) and m.group(1) in ids and lines[i + 1].startswith("calls="))
if not calls:
    sys.exit(f"{function} was never called (inlined? it needs #[inline(never)])")
print(f"{function}: {total / calls:,.0f} instructions per call ({calls} calls)")
PY
