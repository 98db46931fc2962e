# Sourced by the client test runners (tests/nio, tests/jssdk, tests/web).
#
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
