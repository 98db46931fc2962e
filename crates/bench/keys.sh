#!/usr/bin/env bash
# The keys figures (issue 10): POST /keys/query of a user with 100 devices and POST
# /keys/claim of a key for each of them, Myelin on SQLite and then Synapse (see versus.sh).
#
#   crates/bench/keys.sh [OUT_DIR] [BENCH_ARGS...]   # default OUT_DIR: bench-results/
#
# --key-devices N changes the number of devices. SKIP_SYNAPSE=1 reuses an earlier
# synapse-keys.json.
exec bash "$(dirname "$0")/versus.sh" keys "$@"
