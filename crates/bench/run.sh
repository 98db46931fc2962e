#!/usr/bin/env bash
# Reproduces the README's performance tables: Myelin on SQLite, Synapse (the reference peer,
# ../shared/tools/synapse-peer.sh), Myelin on PostgreSQL, and two Myelin instances on one
# PostgreSQL database, each driven by the same myelin-bench, one after the other.
#
#   crates/bench/run.sh [OUT_DIR]          # default: bench-results/
#
# Environment: PG_URL (default postgres://postgres:postgres@127.0.0.1:5432), SKIP_SYNAPSE=1
# to reuse an earlier synapse.json, SKIP_POSTGRES=1 for the SQLite legs only.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mkdir -p "${1:-$root/bench-results}" && cd "${1:-$root/bench-results}" && pwd)"
cd "$root"
cargo build --release -p myelin -p myelin-bench
B="$root/target/release/myelin-bench"
M="$root/target/release/myelin"
CONF="$root/crates/bench/myelin.toml"
PG="${PG_URL:-postgres://postgres:postgres@127.0.0.1:5432}"
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
RUST_LOG=warn "$M" serve --config "$CONF" >myelin-sqlite.log 2>&1 &
P=$!
wait_up http://127.0.0.1:8008
"$B" --url http://127.0.0.1:8008 --pid "$P" --label "Myelin (SQLite)" --out myelin-sqlite.json
kill "$P"; wait "$P" || true

if [[ -z "${SKIP_SYNAPSE:-}" ]]; then
  echo "== Synapse, SQLite"
  peer="$root/../shared/tools/synapse-peer.sh"
  SYNAPSE_PEER_VERSION="${SYNAPSE_PEER_VERSION:-matrix-synapse==1.163.2}" bash "$peer" start
  SPID="$(bash "$peer" pid)"
  "$B" --url http://127.0.0.1:18008 --pid "$SPID" --label "Synapse 1.163.2 (SQLite)" --out synapse.json
  # Left running, its background work would take CPU from the legs that follow.
  bash "$peer" stop
fi

if [[ -z "${SKIP_POSTGRES:-}" ]]; then
  echo "== Myelin, PostgreSQL"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS myelin_bench" -c "CREATE DATABASE myelin_bench"
  MYELIN_DATABASE__URL="$PG/myelin_bench" RUST_LOG=warn "$M" serve --config "$CONF" >myelin-pg.log 2>&1 &
  P=$!
  wait_up http://127.0.0.1:8008
  "$B" --url http://127.0.0.1:8008 --pid "$P" --label "Myelin (PostgreSQL)" --out myelin-pg.json
  kill "$P"; wait "$P" || true

  echo "== Two Myelin instances, one PostgreSQL database"
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS myelin_bench2" -c "CREATE DATABASE myelin_bench2"
  MYELIN_DATABASE__URL="$PG/myelin_bench2" RUST_LOG=warn "$M" serve --config "$CONF" >myelin-a.log 2>&1 &
  PA=$!
  wait_up http://127.0.0.1:8008
  MYELIN_LISTEN=127.0.0.1:8009 MYELIN_DATABASE__URL="$PG/myelin_bench2" RUST_LOG=warn \
    "$M" serve --config "$CONF" >myelin-b.log 2>&1 &
  PB=$!
  wait_up http://127.0.0.1:8009
  "$B" --url http://127.0.0.1:8008,http://127.0.0.1:8009 --pid "$PA,$PB" \
    --label "2 × Myelin (PostgreSQL)" --out myelin-pg2.json
  kill "$PA" "$PB"; wait "$PA" "$PB" || true
fi

echo
"$B" --compare myelin-sqlite.json synapse.json --chart myelin-vs-synapse.svg
if [[ -z "${SKIP_POSTGRES:-}" ]]; then
  echo
  "$B" --compare myelin-pg.json myelin-pg2.json
fi
