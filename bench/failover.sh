#!/usr/bin/env bash
# Failover time of a three-node cluster on this machine with the default Raft timings: SIGKILL
# of the leader, then single-row INSERTs through a survivor in a loop; the time from the kill
# to the first acknowledged write, per run, and the median. Target: under 5 s.
# Usage: bench/failover.sh [runs, default 5]
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
BIN=$(kalamdb_bin)

one_run() {  # prints seconds from the leader's kill to the first acknowledged write
  # Runs in a command substitution's subshell: its nodes are stopped there, however it ends.
  trap stop_cluster EXIT
  start_cluster "$BIN" "run$1"
  local leader=$CLUSTER_LEADER survivor=$((CLUSTER_LEADER % 3 + 1))
  cluster_node "$survivor" -c "CREATE TABLE t (id BIGINT PRIMARY KEY)"
  kill -9 "${CLUSTER_PIDS[leader-1]}"
  python3 - "${CLUSTER_PORTS[survivor-1]}" <<'PY'
import subprocess, sys, time
killed = time.monotonic()
while time.monotonic() - killed < 60:
    done = subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", sys.argv[1], "-U", "root",
                           "-d", "kalamdb", "-c", "INSERT INTO t VALUES (1)"], capture_output=True)
    if done.returncode == 0:
        print("%.2f" % (time.monotonic() - killed))
        sys.exit(0)
sys.exit("no write succeeded within 60 s")
PY
  stop_cluster
}

times=()
for run in $(seq "$RUNS"); do times+=("$(one_run "$run")"); done
echo "seconds from the leader's kill to the first acknowledged write: ${times[*]}"
echo "median: $(printf '%s\n' "${times[@]}" | median) s (target: under 5 s)"
