#!/usr/bin/env bash
# The finding-things figures (issue 15): /publicRooms over 10 000 published rooms, /search
# over 100 000 messages and /relations of a thread of 1 000 replies, Myelin on SQLite and
# then Synapse (see versus.sh).
#
#   crates/bench/discovery.sh [OUT_DIR] [BENCH_ARGS...]   # default OUT_DIR: bench-results/
#
# BENCH_ARGS override the sizes, e.g. --public-rooms 1000 --search-messages 10000.
# SKIP_SYNAPSE=1 reuses an earlier synapse-discovery.json.
exec bash "$(dirname "$0")/versus.sh" discovery "$@"
