#!/usr/bin/env bash
# One group of myelin-bench scenarios (its --only NAME), Myelin on SQLite and then Synapse
# (the reference peer), each driven by the same myelin-bench, then the side-by-side table.
#
#   crates/bench/versus.sh NAME [OUT_DIR] [BENCH_ARGS...]   # default OUT_DIR: bench-results/
#
# Writes myelin-NAME.json and synapse-NAME.json. SKIP_SYNAPSE=1 reuses an earlier
# synapse-NAME.json.
set -euo pipefail
name="$1"
shift
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mkdir -p "${1:-$root/bench-results}" && cd "${1:-$root/bench-results}" && pwd)"
shift || true
cd "$root"
cargo build --release -p myelin -p myelin-bench
B="$root/target/release/myelin-bench"
M="$root/target/release/myelin"
CONF="$root/crates/bench/myelin.toml"
cd "$out"

wait_up() {
  for _ in $(seq 1 100); do
    curl -sf "$1/_matrix/client/versions" >/dev/null && return 0
    sleep 0.1
  done
  echo "no server at $1" >&2
  return 1
}

echo "== Myelin, SQLite"
rm -rf bench-data
RUST_LOG=warn "$M" serve --config "$CONF" >"myelin-$name.log" 2>&1 &
P=$!
# A failed run must not leave the server holding the port.
trap 'kill "$P" 2>/dev/null || true' EXIT
wait_up http://127.0.0.1:8008
"$B" --url http://127.0.0.1:8008 --pid "$P" --label "Myelin (SQLite)" --only "$name" \
  --out "myelin-$name.json" "$@"
kill "$P"; wait "$P" || true

if [[ -z "${SKIP_SYNAPSE:-}" ]]; then
  echo "== Synapse, SQLite"
  peer="$root/../shared/tools/synapse-peer.sh"
  SYNAPSE_PEER_VERSION="${SYNAPSE_PEER_VERSION:-matrix-synapse==1.163.2}" bash "$peer" start
  SPID="$(bash "$peer" pid)"
  "$B" --url http://127.0.0.1:18008 --pid "$SPID" --label "Synapse 1.163.2 (SQLite)" \
    --only "$name" --out "synapse-$name.json" "$@"
  bash "$peer" stop
fi

echo
"$B" --compare "myelin-$name.json" "synapse-$name.json"
