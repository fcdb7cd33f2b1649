#!/usr/bin/env bash
# Failover time of a three-node cluster on this machine with the default Raft timings: SIGKILL
# of the leader, then single-row INSERTs through a survivor in a loop; the time from the kill
# to the first acknowledged write, per run, and the median. Target: under 5 s.
# Usage: bench/failover.sh [runs, default 5]
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
BIN="${KALAMDB_BIN:-}"
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  BIN="$CARGO_TARGET_DIR/release/kalamdb"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
stop_nodes() { for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; PIDS=(); }
trap 'stop_nodes; cleanup' EXIT

one_run() {  # prints seconds from the leader's kill to the first acknowledged write
  local run=$1 ports=() rafts=() leader="" survivor i j
  # Runs in a command substitution's subshell: its nodes are stopped there, however it ends.
  trap stop_nodes EXIT
  for i in 1 2 3; do ports+=("$(free_port)"); rafts+=("$(free_port)"); done
  for i in 1 2 3; do
    sed -e "s/^port = 5432/port = ${ports[i-1]}/" -e "s#^data_path = .*#data_path = \"$WORK/r$run-n$i\"#" \
        -e "s/^root_password = .*/root_password = \"$PGPASSWORD\"/" -e 's/^level = .*/level = "warn"/' \
        "$ROOT/server.toml" > "$WORK/r$run-n$i.toml"
    printf '\n[cluster]\nnode_id = %s\nraft_address = "127.0.0.1:%s"\n' "$i" "${rafts[i-1]}" >> "$WORK/r$run-n$i.toml"
    for j in 1 2 3; do
      [ "$i" = "$j" ] && continue
      printf '[[cluster.peer]]\nnode_id = %s\nraft_address = "127.0.0.1:%s"\n' "$j" "${rafts[j-1]}" >> "$WORK/r$run-n$i.toml"
    done
    "$BIN" --config "$WORK/r$run-n$i.toml" 2>"$WORK/r$run-n$i.log" &
    PIDS+=($!)
  done
  at() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${ports[$1-1]}" -U root -d kalamdb "${@:2}"; }
  for i in 1 2 3; do
    for _ in $(seq 300); do at "$i" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for i in 1 2 3; do
    [ "$(at "$i" -At -c "SELECT role FROM system.cluster WHERE is_local")" = leader ] && leader=$i
  done
  [ -n "$leader" ] || { echo "no node leads" >&2; exit 1; }
  survivor=$((leader % 3 + 1))
  at "$survivor" -c "CREATE TABLE t (id BIGINT PRIMARY KEY)"
  kill -9 "${PIDS[leader-1]}"
  python3 - "${ports[survivor-1]}" <<'PY'
import os, subprocess, sys, time
killed = time.monotonic()
while time.monotonic() - killed < 60:
    done = subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", sys.argv[1], "-U", "root",
                           "-d", "kalamdb", "-c", "INSERT INTO t VALUES (1)"], capture_output=True)
    if done.returncode == 0:
        print("%.2f" % (time.monotonic() - killed))
        sys.exit(0)
sys.exit("no write succeeded within 60 s")
PY
  stop_nodes
}

times=()
for run in $(seq "$RUNS"); do times+=("$(one_run "$run")"); done
echo "seconds from the leader's kill to the first acknowledged write: ${times[*]}"
echo "median: $(printf '%s\n' "${times[@]}" | median) s (target: under 5 s)"
