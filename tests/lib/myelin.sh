# Sourced by the client test runners (tests/nio, tests/jssdk, tests/web).

#   wait_for_myelin URL PID LOG
#
# Waits up to 15 s for the server started as PID to answer URL/_matrix/client/versions;
# prints its log LOG and returns 1 if it exits first or never answers.
wait_for_myelin() {
    local url="$1" pid="$2" log="$3"
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null --max-time 1 "$url/_matrix/client/versions" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "myelin exited before it was ready:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "myelin did not answer $url/_matrix/client/versions within 15 s:" >&2
    cat "$log" >&2
    return 1
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

#   start_myelin BIN NAME [VAR=VALUE ...]
#
# Starts Myelin from BIN on a free port with a fresh SQLite database NAME.db in a temporary
# directory, with open registration and the extra configuration given, and waits for it. Sets
# `url`, `work` (its directory: `$work/server.log` is its log) and `server_pid`; the server
# and the directory go when the script exits.
start_myelin() {
    local bin="$1" name="$2"
    shift 2
    work="$(mktemp -d)"
    local port
    port="$(free_port)"
    url="http://127.0.0.1:$port"
    trap stop_myelin EXIT
    env MYELIN_LISTEN="127.0.0.1:$port" \
        MYELIN_REGISTRATION__ENABLED=true \
        MYELIN_DATABASE__URL="sqlite://$work/$name.db" \
        "$@" "$bin" serve >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_myelin "$url" "$server_pid" "$work/server.log"
}

stop_myelin() {
    if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
