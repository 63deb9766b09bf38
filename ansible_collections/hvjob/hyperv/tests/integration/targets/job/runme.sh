#!/usr/bin/env bash
# hvjob.hyperv.job against a simulated cluster: what it changed is read back from the simulator's
# ground truth (its jobs and its method log), and the password never shows, even at -vvvv.
set -euo pipefail
source ../setup_hvjob_simulator/simulator.sh
start_simulator
ansible-playbook runme.yml -e "@$SIM_DIR/cluster.json" -vvvv "$@" | tee "$SIM_DIR/output.log"
assert_no_password "$SIM_DIR/output.log"
