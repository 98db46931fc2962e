#!/usr/bin/env bash
# Runs the browser steps (Cinny in headless Chromium) against a freshly started Myelin.
#
#   tests/web/run.sh                          # builds target/debug/myelin first
#   MYELIN_BIN=target/debug/myelin tests/web/run.sh
#   WEB_STEPS=1,2 tests/web/run.sh            # only these steps
#   WEB_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres tests/web/run.sh
#   WEB_SERVER_URL=http://127.0.0.1:18008 WEB_STEPS=1,2,3,4 tests/web/run.sh
#                                             # a server already running (the reference run
#                                             # against Synapse: see tests/web/README.md)
#
# Needs node >= 20 and npm, and Debian's chromium (CHROMIUM to use another). CINNY_DIR is the
# built client (default: ../shared/web-clients/cinny beside the repository); without it the
# steps are skipped, saying so. Artifacts (screenshots, console logs, failed requests, the
# request report, the server log) go to WEB_ARTIFACTS (default: tests/web/artifacts).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
web="$root/tests/web"
# shellcheck source=../lib/myelin.sh
source "$root/tests/lib/myelin.sh"

cinny="${CINNY_DIR:-$root/../shared/web-clients/cinny}"
if [[ ! -f "$cinny/index.html" ]]; then
    echo "SKIPPED: tests/web needs the built Cinny client at $cinny (set CINNY_DIR); not run."
    exit 0
fi
cinny="$(cd "$cinny" && pwd)"

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" ]]; then
    echo "tests/web needs Chromium at $chromium_bin: apt-get install -y chromium (or set CHROMIUM)" >&2
    exit 1
fi

external="${WEB_SERVER_URL:-}"
bin="${MYELIN_BIN:-}"
if [[ -z "$bin" && -z "$external" ]]; then
    cargo build --quiet --bin myelin
    bin=target/debug/myelin
fi
[[ -n "$bin" ]] && bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
# The server reads MYELIN_* variables as configuration (and warns about those that name no
# key): MYELIN_BIN is this script's own input, not the server's.
unset MYELIN_BIN

# npm ci wipes node_modules first, so only when the lock file changed since the last install.
lock_sum="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$web/node_modules/.installed-lock" 2>/dev/null)" != "$lock_sum" ]]; then
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$web/node_modules/.installed-lock"
fi

# The default directory holds only the last run's files; one given by WEB_ARTIFACTS is left as is.
if [[ -z "${WEB_ARTIFACTS:-}" ]]; then
    rm -rf "$web/artifacts"
fi
artifacts="${WEB_ARTIFACTS:-$web/artifacts}"
mkdir -p "$artifacts"
artifacts="$(cd "$artifacts" && pwd)"

work="$(mktemp -d)"
port="$(free_port)"
url="http://127.0.0.1:$port"

server_pid=""
pg_db=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$pg_db" ]]; then
        psql -q "$WEB_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $pg_db" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -n "$external" ]]; then
    url="${external%/}"
    echo "server: $url (already running)"
    : >"$work/server.log"
else
    # SQLite unless WEB_POSTGRES_URL names a PostgreSQL server (an admin URL such as
    # postgres://postgres@127.0.0.1:5432/postgres) to make a fresh database on.
    database="sqlite://$work/web.db"
    if [[ -n "${WEB_POSTGRES_URL:-}" ]]; then
        pg_db="myelin_web_$(date +%s)_$$"
        psql -q -v ON_ERROR_STOP=1 "$WEB_POSTGRES_URL" -c "CREATE DATABASE $pg_db"
        database="$(node -e 'const u=new URL(process.argv[1]);u.pathname="/"+process.argv[2];console.log(u.href)' "$WEB_POSTGRES_URL" "$pg_db")"
    fi
    echo "database: ${database%%://*}"

    # Every step registers its own people from this one address, more than a person's burst.
    MYELIN_LISTEN="127.0.0.1:$port" \
    MYELIN_REGISTRATION__ENABLED=true \
    MYELIN_RATE_LIMITS__REGISTRATION_PER_ADDRESS__PER_SECOND=10 \
    MYELIN_RATE_LIMITS__REGISTRATION_PER_ADDRESS__BURST=100 \
    MYELIN_DATABASE__URL="$database" \
        "$bin" serve >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_myelin "$url" "$server_pid" "$work/server.log"
fi

status=0
MYELIN_URL="$url" CINNY_DIR="$cinny" WEB_ARTIFACTS="$artifacts" CHROMIUM="$chromium_bin" \
    node "$web/run.mjs" || status=$?
cp "$work/server.log" "$artifacts/server.log"
if [[ $status -ne 0 ]]; then
    echo "--- server log (last 30 lines; all of it in $artifacts/server.log) ---" >&2
    tail -n 30 "$work/server.log" >&2
fi
exit $status
