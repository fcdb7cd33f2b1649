#!/usr/bin/env bash
# Point SELECT by primary key, a mixed workload (80% point SELECT, 20% UPDATE of a random
# row) and single-row INSERT throughput: pgbench, prepared protocol, 8 clients, against KalamDB
# and PostgreSQL 15 with the same durability (fsync on every commit). Point SELECTs run twice:
# on KalamDB's hot rows (RocksDB) and after FLUSH TABLE (Parquet).
# Usage: bench/point_ops.sh [seconds per run, default 15] [runs, default 3]
source "$(dirname "$0")/lib.sh"
SECONDS_PER_RUN=${1:-15}
RUNS=${2:-3}
ROWS=100000

start_kalamdb
start_postgres
for db in kalam pg; do
  $db -c "CREATE SCHEMA bench" -c "CREATE TABLE bench.kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)"
  $db -c "INSERT INTO bench.kv SELECT value, 'value ' || value FROM generate_series(1, $ROWS) AS g(value)" 2>/dev/null \
    || $db -c "INSERT INTO bench.kv SELECT g, 'value ' || g FROM generate_series(1, $ROWS) AS g"
done

write_point_scripts "$ROWS"

tps() {  # port workload database; a workload is a script name, or "mixed"
  local scripts=(-f "$WORK/$2.sql")
  if [ "$2" = mixed ]; then
    scripts=(-f "$WORK/select.sql@8" -f "$WORK/update.sql@2")
  fi
  pgbench -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -h 127.0.0.1 -p "$1" -U root "${scripts[@]}" "$3" 2>&1 \
    | awk '/^tps = / {print $3}'
}

flush_kalamdb() {  # moves bench.kv's rows into a Parquet segment and waits for the job
  kalam -c "FLUSH TABLE bench.kv" >/dev/null
  wait_for_jobs
}

run() {  # label workload
  k=$(for _ in $(seq "$RUNS"); do tps "$KALAM_PORT" "$2" kalamdb; done | median)
  p=$(for _ in $(seq "$RUNS"); do tps "$PG_PORT" "$2" postgres; done | median)
  printf '%-24s %14.0f %14.0f %8.2f\n' "$1" "$k" "$p" "$(echo "$k / $p" | bc -l)"
}

printf '%-24s %14s %14s %8s\n' workload "KalamDB tps" "PostgreSQL tps" ratio
run "point select" select
run "mixed 80/20" mixed
# The same lookups once KalamDB's rows are flushed to Parquet (PostgreSQL's stay in its heap).
flush_kalamdb
run "point select (flushed)" select
run "point insert" insert
