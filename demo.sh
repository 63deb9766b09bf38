#!/usr/bin/env bash
# Set up hvjob in .venv, start the bundled fake WinRM server on loopback, and stop / kill a running
# Hyper-V export job on it end to end: real HTTP, real NTLM, message encryption. Nothing leaves 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
export HVJOB_PASSWORD="demo-$(date +%s)-$RANDOM"         # a throw-away account for the fake server
printf ':demo:%s\n' "$HVJOB_PASSWORD" > "$work/users.txt"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/hvjob serve --users "$work/users.txt" --port "$port" &
server=$!
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
job=5F3C2A10-7B4D-4E8A-9C61-000000000001
hv() { echo "+ hvjob $*" >&2; .venv/bin/hvjob --scheme http -u demo "$@"; }
hv identify "127.0.0.1:$port"
hv list "127.0.0.1:$port" --state Running
hv stop "127.0.0.1:$port" --job "$job" --wait           # RequestStateChange(Kill) -> Killed
hv stop "127.0.0.1:$port" --job "$job"                  # idempotent: already Killed, unchanged
hv --output json kill "127.0.0.1:$port" --job "$job"    # the seed's KillJob(DeleteOnKill=false)
