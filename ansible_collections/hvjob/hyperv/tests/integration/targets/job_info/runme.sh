#!/usr/bin/env bash
# hvjob.hyperv.job_info against a simulated cluster: its filters (as hvjob list's), typed values,
# a usage error for a bad value, and no method call.
set -euo pipefail
source ../setup_hvjob_simulator/simulator.sh
start_simulator
ansible-playbook runme.yml -e "@$SIM_DIR/cluster.json" "$@" | tee "$SIM_DIR/output.log"
assert_no_password "$SIM_DIR/output.log"
