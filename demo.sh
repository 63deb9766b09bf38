#!/usr/bin/env bash
# Set up hvjob in .venv, start the bundled simulated Hyper-V cluster on loopback (three nodes, real
# HTTP, real NTLM with message encryption), and run the story of an export job end to end:
# list the running exports across the cluster, stop one (once, on the node that owns it), stop it
# again (unchanged), stop the stragglers by age and owner, kill a finished job, wait for one to
# complete, read a failed one's errors, and show what the cluster's ground truth says was done.
# Nothing leaves 127.0.0.1; the simulator stops when the demo ends.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .

work=$(mktemp -d)
cleanup() { [ -n "${simulator:-}" ] && kill "$simulator" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export HVJOB_PASSWORD="demo-$(date +%s)-$RANDOM"             # a throw-away account of the simulator
printf ':demo:%s\n' "$HVJOB_PASSWORD" >"$work/users.txt"

.venv/bin/hvjob serve --simulate --users "$work/users.txt" --port 0 >"$work/cluster.json" 2>"$work/requests.log" &
simulator=$!
for _ in $(seq 100); do [ -s "$work/cluster.json" ] && break; sleep 0.1; done
[ -s "$work/cluster.json" ] || { echo "the simulator did not start:" >&2; cat "$work/requests.log" >&2; exit 1; }

# A profile, as an admin would keep one: user, scheme, and where each node listens (DNS does not
# know these names here). The simulator's first output line names its nodes and their URLs.
export XDG_CONFIG_HOME="$work/config"
mkdir -p "$XDG_CONFIG_HOME/hvjob"
.venv/bin/python - "$work/cluster.json" >"$XDG_CONFIG_HOME/hvjob/config.toml" <<'PY'
import json, sys
from urllib.parse import urlsplit
cluster = json.load(open(sys.argv[1]))
print('[profile.demo]\nusername = "demo"\nscheme = "http"\n\n[profile.demo.resolve]')
for node, url in cluster["nodes"].items():
    parts = urlsplit(url)
    print(f'{node} = "{parts.hostname}:{parts.port}"')
PY
control=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"]["HVNODE01"].rsplit("/", 1)[0])' "$work/cluster.json")
truth() {  # the simulator's ground truth: what its providers really did (control API, JSON)
    .venv/bin/python - "$control" "$@" <<'PY'
import json, sys, urllib.request
base, path, body = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else None)
request = urllib.request.Request(base + path, data=body.encode() if body else None, method="POST" if body else "GET",
                                 headers={"Content-Type": "application/json"})
data = json.load(urllib.request.urlopen(request))
if path == "/_hvjob/log":
    for e in data["log"]:
        print(f"  {e['node']}  {e['method']}({', '.join(f'{k}={v}' for k, v in e['parameters'].items())})  "
              f"job {e['job']}  -> ReturnValue {e['return_value']}")
PY
}
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$1" "$plain"; }
hv() {  # show the command as it could be pasted, then run it
    printf '+ hvjob --profile demo'; printf ' %q' "$@"; printf '\n'
    .venv/bin/hvjob --profile demo "$@"
}

running=0D2F5C1A-7E3B-4A9D-8C2E-000000000001      # hvjob.testing.sim.default: the documented jobs
completing=0D2F5C1A-7E3B-4A9D-8C2E-000000000003
completed=0D2F5C1A-7E3B-4A9D-8C2E-000000000004
failed=0D2F5C1A-7E3B-4A9D-8C2E-000000000005

step "1. The running exports across the cluster (HVNODE01 is asked for the nodes; each job listed once)"
hv --cluster list HVNODE01 --state Running

step "2. Stop one: every node is asked, the one that has it (HVNODE01) stops it, once"
hv --cluster stop HVNODE01 --job "$running" --wait

step "3. The same stop again: the job is already Killed, nothing is sent (CHANGED no)"
hv --cluster stop HVNODE01 --job "$running"

step "4. Stragglers: an export started three hours ago by the backup service; select it by age and owner"
truth /_hvjob/jobs '{"id": "0D2F5C1A-7E3B-4A9D-8C2E-0000000000AA", "node": "HVNODE02", "percent": 20,
                     "elapsed": 10800, "owner": "CONTOSO\\backup-svc", "name": "Nightly export (stuck)"}'
hv --cluster list HVNODE01 --state Running --older-than 2h --owner 'CONTOSO\backup-svc'
hv --cluster stop HVNODE01 --all --older-than 2h --owner 'CONTOSO\backup-svc' --yes

step "5. KillJob on a job that has already completed: the node refuses (32775: Vendor Specific in KillJob's table, Invalid State in Hyper-V's), exit 1"
hv kill HVNODE01 --job "$completed" || echo "(exit $?, as expected: nothing was changed)"

step "6. Wait for a job to complete (the simulator's clock is moved 60 s on instead of waiting)"
truth /_hvjob/clock '{"advance": 60}'
hv wait HVNODE03 --job "$completing" --timeout 30

step "7. The errors of a failed export (GetErrorEx)"
hv errors HVNODE02 --job "$failed"

step "8. What the cluster really did (its ground truth): every method its providers executed"
truth /_hvjob/log
echo
echo "The simulator answered $(grep -c " -> " "$work/requests.log") requests (hvjob serve --simulate prints each one on stderr)."
echo "Next: docs/testing.md (test your own scripts and playbooks against it), docs/cli.md (every command)."
