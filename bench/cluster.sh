#!/usr/bin/env bash
# Cluster mode against a single node, measured in the same run: single-row INSERT and
# primary-key point SELECT (pgbench, prepared protocol, 8 clients) on a three-node cluster on
# this machine (through the leader) and on one node with the same settings. Targets: INSERT
# at least 0.5x a single node's, point SELECT on the leader at least 0.9x.
# Usage: bench/cluster.sh [seconds per run, default 15] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECONDS_PER_RUN=${1:-15}
RUNS=${2:-3}
ROWS=100000
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_kalamdb  # the single node, on $KALAM_PORT; it also builds the release binary
BIN="${KALAMDB_BIN:-$CARGO_TARGET_DIR/release/kalamdb}"
NODE_PORTS=() RAFT_PORTS=() NODE_PIDS=()
for i in 1 2 3; do NODE_PORTS+=("$(free_port)"); RAFT_PORTS+=("$(free_port)"); done
stop_cluster() {
  for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  cleanup
}
trap stop_cluster EXIT
for i in 1 2 3; do
  sed -e "s/^port = $KALAM_PORT/port = ${NODE_PORTS[i-1]}/" \
      -e "s#^data_path = .*#data_path = \"$WORK/node$i\"#" "$WORK/server.toml" > "$WORK/node$i.toml"
  printf '\n[cluster]\nnode_id = %s\nraft_address = "127.0.0.1:%s"\n' "$i" "${RAFT_PORTS[i-1]}" >> "$WORK/node$i.toml"
  for j in 1 2 3; do
    [ "$i" = "$j" ] && continue
    printf '[[cluster.peer]]\nnode_id = %s\nraft_address = "127.0.0.1:%s"\n' "$j" "${RAFT_PORTS[j-1]}" >> "$WORK/node$i.toml"
  done
  "$BIN" --config "$WORK/node$i.toml" 2>"$WORK/node$i.log" &
  NODE_PIDS+=($!)
done
node() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${NODE_PORTS[$1-1]}" -U root -d kalamdb "${@:2}"; }
for i in 1 2 3; do
  for _ in $(seq 300); do node "$i" -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
  node "$i" -c 'SELECT 1' >/dev/null || { echo "node $i did not start:"; cat "$WORK/node$i.log"; exit 1; }
done
LEADER=""
for i in 1 2 3; do
  [ "$(node "$i" -At -c "SELECT role FROM system.cluster WHERE is_local")" = leader ] && LEADER=$i
done
[ -n "$LEADER" ] || { echo "no node leads"; exit 1; }
LEADER_PORT=${NODE_PORTS[LEADER-1]}

for target in kalam "node $LEADER"; do
  $target -c "CREATE SCHEMA bench" -c "CREATE TABLE bench.kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
  $target -c "INSERT INTO bench.kv SELECT value, 'value ' || value FROM generate_series(1, $ROWS) AS g(value)"
done
write_point_scripts "$ROWS"

tps() {  # port workload
  pgbench -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -h 127.0.0.1 -p "$1" -U root \
    -f "$WORK/$2.sql" kalamdb 2>&1 | awk '/^tps = / {print $3}'
}

run() {  # label workload; single node and cluster runs alternate
  local single=() cluster=()
  for _ in $(seq "$RUNS"); do
    single+=("$(tps "$KALAM_PORT" "$2")")
    cluster+=("$(tps "$LEADER_PORT" "$2")")
  done
  s=$(printf '%s\n' "${single[@]}" | median)
  c=$(printf '%s\n' "${cluster[@]}" | median)
  printf '%-28s %14.0f %14.0f %8.2f\n' "$1" "$s" "$c" "$(echo "$c / $s" | bc -l)"
}

printf '%-28s %14s %14s %8s\n' workload "1 node tps" "3 nodes tps" ratio
run "point select (leader)" select
run "point insert" insert
