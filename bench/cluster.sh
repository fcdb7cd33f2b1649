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
start_kalamdb  # the single node, on $KALAM_PORT; it also builds the release binary
start_cluster "$(kalamdb_bin)" cluster
LEADER=$CLUSTER_LEADER
node() { cluster_node "$@"; }
LEADER_PORT=${CLUSTER_PORTS[LEADER-1]}

for target in kalam "node $LEADER"; do
  $target -c "CREATE SCHEMA bench" -c "CREATE TABLE bench.kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
  # In chunks: one statement is one log entry, and a write must commit within the request
  # timeout (5 s).
  for first in $(seq 1 10000 "$ROWS"); do
    $target -c "INSERT INTO bench.kv SELECT value, 'value ' || value FROM generate_series($first, $((first + 9999))) AS g(value)"
  done
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
