#!/usr/bin/env bash
# Runs the matrix-nio client test against a freshly started Myelin.
#
#   tests/nio/run.sh                    # builds target/debug/myelin first
#   MYELIN_BIN=target/release/myelin tests/nio/run.sh
#
# Needs python3 with tests/nio/requirements.txt installed. Exits with pytest's status.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=../lib/myelin.sh
source "$root/tests/lib/myelin.sh"

bin="${MYELIN_BIN:-}"
if [[ -z "$bin" ]]; then
    cargo build --quiet --bin myelin
    bin=target/debug/myelin
fi
# The server reads MYELIN_* variables as configuration (and warns about those that name no
# key): MYELIN_BIN is this script's own input, not the server's.
unset MYELIN_BIN

start_myelin "$bin" nio

status=0
MYELIN_URL="$url" python3 -m pytest -q -p no:cacheprovider -p no:asyncio tests/nio "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "--- server log ---" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit $status
