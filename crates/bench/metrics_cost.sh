#!/usr/bin/env bash
# What metrics cost a request: the server's instructions per GET of account data, counted by
# callgrind (deterministic, unlike wall-clock throughput on a 2-core machine), with
# metrics.listen unset and set. The README's "Metrics cost" line comes from this.
#
#   crates/bench/metrics_cost.sh [REQUESTS]      # default 3000; needs valgrind
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -p myelin
M="$root/target/release/myelin"
LOAD="$root/crates/bench/metrics_cost_load.py"
N="${1:-3000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

count() { # label [VAR=VALUE ...]: prints the instructions per request
  local label="$1"
  shift
  rm -rf bench-data
  env RUST_LOG=warn MYELIN_WORKERS=1 "$@" valgrind --tool=callgrind \
    --callgrind-out-file="cg.$label" --instr-atstart=no \
    "$M" serve --config "$root/crates/bench/myelin.toml" >"$label.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do
    curl -sf http://127.0.0.1:8008/_matrix/client/versions >/dev/null && break
    sleep 0.2
  done
  python3 "$LOAD" setup
  python3 "$LOAD" run 200 # warm caches, not counted
  callgrind_control -i on "$pid" >/dev/null
  python3 "$LOAD" run "$N"
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  kill -INT "$pid"
  wait "$pid" || true
  local total
  total="$(grep -h '^totals:' cg."$label"* | awk '{s += $2} END {print s}')"
  echo $((total / N))
}

off="$(count off)"
on="$(count on MYELIN_METRICS__LISTEN=127.0.0.1:9100)"
echo "instructions per GET account data: metrics off $off, on $on" \
  "($(awk -v a="$off" -v b="$on" 'BEGIN {printf "%+.1f%%", (b - a) * 100 / a}'))"
