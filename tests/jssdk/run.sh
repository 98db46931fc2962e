#!/usr/bin/env bash
# Runs the matrix-js-sdk scenarios (tests/jssdk/account.mjs, the account; crypto.mjs,
# end-to-end encryption with the SDK's Rust crypto) against a freshly started Myelin.
#
#   tests/jssdk/run.sh                    # builds target/debug/myelin first
#   MYELIN_BIN=target/release/myelin tests/jssdk/run.sh
#
# Needs node >= 20 and npm (the pinned matrix-js-sdk is installed here with `npm ci`).
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
# The server reads MYELIN_* variables as configuration (and warns about those that name no key).
unset MYELIN_BIN

if [[ ! -d tests/jssdk/node_modules/matrix-js-sdk ]]; then
    (cd tests/jssdk && npm ci --no-audit --no-fund --loglevel=error)
fi

start_myelin "$bin" jssdk

status=0
for scenario in account crypto; do
    MYELIN_URL="$url" node "tests/jssdk/$scenario.mjs" || status=$?
done
if [[ $status -ne 0 ]]; then
    echo "--- server log ---" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit $status
