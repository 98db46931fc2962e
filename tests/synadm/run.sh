#!/usr/bin/env bash
# Runs the synadm admin CLI against a freshly started Myelin.
#
#   tests/synadm/run.sh                    # builds target/debug/myelin first
#   MYELIN_BIN=target/release/myelin tests/synadm/run.sh
#
# Needs python3 with tests/synadm/requirements.txt installed. Exits with pytest's status.
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
unset MYELIN_BIN

secret="synadm-test-shared-secret-$RANDOM$RANDOM"
start_myelin "$bin" synadm MYELIN_REGISTRATION__SHARED_SECRET="$secret"

status=0
MYELIN_URL="$url" MYELIN_SHARED_SECRET="$secret" \
    python3 -m pytest -q -p no:cacheprovider tests/synadm "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "--- server log ---" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit $status
