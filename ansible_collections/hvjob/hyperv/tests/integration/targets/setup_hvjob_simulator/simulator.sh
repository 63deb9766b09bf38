# Sourced by the targets' runme.sh: start a simulated Hyper-V cluster (hvjob serve --simulate) on
# loopback for this target alone, with a fresh account, and stop it when the script exits.
#   start_simulator [serve options...]   -> $SIM_DIR/cluster.json (extra-vars: cluster, nodes), $HVJOB_PASSWORD
#   assert_no_password FILE...           -> fails if the account's password appears in any of them
set -euo pipefail

PYTHON="${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python3)}"
HVJOB="$(dirname "$PYTHON")/hvjob"
[ -x "$HVJOB" ] || HVJOB="$(command -v hvjob)"
SIM_DIR="$(mktemp -d)"
HVJOB_USERNAME=alice
HVJOB_PASSWORD="$("$PYTHON" -c 'import secrets; print("Sim-" + secrets.token_urlsafe(18))')"
export HVJOB_USERNAME HVJOB_PASSWORD SIM_DIR

stop_simulator() {
    if [ -n "${SIM_PID:-}" ]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$SIM_DIR"
}
trap stop_simulator EXIT

start_simulator() {
    (umask 077 && printf ':%s:%s\n' "$HVJOB_USERNAME" "$HVJOB_PASSWORD" >"$SIM_DIR/users.txt")
    "$HVJOB" serve --simulate --users "$SIM_DIR/users.txt" --port 0 --speed 0 "$@" \
        >"$SIM_DIR/cluster.json" 2>"$SIM_DIR/serve.log" &
    SIM_PID=$!
    # The first line of its output names the nodes: wait for it (or for the server to die).
    while [ ! -s "$SIM_DIR/cluster.json" ]; do
        kill -0 "$SIM_PID" 2>/dev/null || { cat "$SIM_DIR/serve.log" >&2; return 1; }
        sleep 0.05
    done
}

assert_no_password() {
    if grep -F -l -- "$HVJOB_PASSWORD" "$@"; then
        echo "the password appeared in the files above" >&2
        return 1
    fi
}
