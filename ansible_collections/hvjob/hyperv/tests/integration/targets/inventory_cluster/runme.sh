#!/usr/bin/env bash
# The hvjob.hyperv.cluster inventory plugin against a simulated cluster: ansible-inventory shows the
# cluster's group, and a playbook over that inventory stops a job once, on the node that has it.
set -euo pipefail
source ../setup_hvjob_simulator/simulator.sh
start_simulator
inventory="$SIM_DIR/cluster.hvjob.yml"
"$PYTHON" - "$SIM_DIR/cluster.json" "$inventory" <<'PY'
import json, sys
from urllib.parse import urlsplit
nodes = json.load(open(sys.argv[1]))["nodes"]
resolve = {name: urlsplit(url).netloc for name, url in nodes.items()}
config = {
    "plugin": "hvjob.hyperv.cluster",
    "seeds": ["HVNODE02"],                  # any node; DNS does not know it, resolve does
    "resolve": resolve,
    "scheme": "http",                       # the username and password: HVJOB_USERNAME, HVJOB_PASSWORD
    "keyed_groups": [{"key": "hvjob_node_state", "prefix": "node"}],
    "groups": {"first_node": "inventory_hostname == 'HVNODE01'"},
}
json.dump(config, open(sys.argv[2], "w"))   # JSON is YAML
PY

ansible-inventory -i "$inventory" --graph | tee "$SIM_DIR/graph.txt"
for line in "@HVCLUSTER:" "|--HVNODE01" "|--HVNODE02" "|--HVNODE03" "@node_Up:" "@first_node:"; do
    grep -qF -- "$line" "$SIM_DIR/graph.txt" || { echo "missing from the graph: $line" >&2; exit 1; }
done
ansible-inventory -i "$inventory" --list >"$SIM_DIR/list.json"
assert_no_password "$SIM_DIR/list.json"

ansible-playbook -i "$inventory" runme.yml -e "@$SIM_DIR/cluster.json" "$@" | tee "$SIM_DIR/output.log"
assert_no_password "$SIM_DIR/output.log"
grep -qF "changed: [HVNODE01]" "$SIM_DIR/output.log"
